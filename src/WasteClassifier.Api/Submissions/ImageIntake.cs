using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// The way every uploaded image enters the system: checked (size, format, pixel count from the header), stored in the
/// object store under its content hash (a retried upload never duplicates), and recorded as an image row (saved at
/// once, so concurrent uploads of the same bytes share one row). Refused files are reported per file and leave no trace.
/// </summary>
public sealed class ImageIntake(ClassifierDbContext db, IObjectStore store, UploadOptions options, SeenContentHashes seen, TimeProvider clock)
{
    public const string FileTooLarge = "file_too_large";

    public sealed record Accepted(UploadedImage File, StoredImage Image);

    public Task<(IReadOnlyList<Accepted> Accepted, IReadOnlyList<RejectedImage> Rejected)> TakeAsync(IReadOnlyList<UploadedImage> files, CancellationToken cancellationToken) =>
        TakeAsync(files, saveNewImages: true, cancellationToken);

    /// <param name="saveNewImages">
    /// False: new image rows are only added to the context, for the caller to save together with its own rows in one
    /// transaction. A concurrent upload of the same bytes then makes the caller's save fail (DbUpdateException); after
    /// clearing the context, taking the files again finds that upload's image row. The objects are stored by then: the
    /// caller's save, too, must not be stopped by a client that goes away (<see cref="AfterClientAbort"/>).
    /// </param>
    public async Task<(IReadOnlyList<Accepted> Accepted, IReadOnlyList<RejectedImage> Rejected)> TakeAsync(IReadOnlyList<UploadedImage> files, bool saveNewImages,
        CancellationToken cancellationToken)
    {
        var rejected = new List<RejectedImage>();
        var checkedFiles = new List<(UploadedImage File, ImageCheck Check, string Hash)>();
        var limits = new ImageLimits { MaxPixels = options.MaxPixels };
        foreach (var file in files)
        {
            var refusal = Check(file, limits, out var check);
            if (refusal is not null) rejected.Add(refusal);
            else checkedFiles.Add((file, check, Convert.ToHexStringLower(SHA256.HashData(file.Content))));
        }
        if (checkedFiles.Count == 0) return ([], rejected);

        // Store first: a row is only ever recorded for bytes that are already in the object store. Once storing has begun,
        // a client that goes away no longer stops the rows that name the objects (see AfterClientAbort).
        cancellationToken.ThrowIfCancellationRequested();
        using var recording = new AfterClientAbort(cancellationToken);
        await Task.WhenAll(checkedFiles.DistinctBy(a => a.Hash).Select(a =>
            store.PutAsync(ObjectKeyFor(a.Hash), a.File.Content, a.File.ContentType ?? "application/octet-stream", recording.Token)));
        var images = await FindOrAddImagesAsync(checkedFiles, saveNewImages, recording.Token);
        return (checkedFiles.Select(a => new Accepted(a.File, images[a.Hash])).ToList(), rejected);
    }

    public static string ObjectKeyFor(string contentHash) => $"sha256/{contentHash[..2]}/{contentHash}";

    private RejectedImage? Check(UploadedImage file, ImageLimits limits, out ImageCheck check)
    {
        check = ImageCheck.Refused(ImageErrors.Empty, "the file is empty");
        var name = FileNames.Sanitize(file.FileName);
        if (file.Length == 0) return new RejectedImage(file.Index, name, ImageErrors.Empty, "the file is empty");
        if (file.Length > options.MaxFileBytes)
            return new RejectedImage(file.Index, name, FileTooLarge, $"the file is {file.Length:N0} bytes; the limit is {options.MaxFileBytes:N0}");
        check = ImageTensorWriter.Inspect(file.Content, limits);
        return check.Ok ? null : new RejectedImage(file.Index, name, check.Error!, check.Message!);
    }

    private async Task<Dictionary<string, StoredImage>> FindOrAddImagesAsync(List<(UploadedImage File, ImageCheck Check, string Hash)> accepted, bool save,
        CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var keys = accepted.Select(a => ObjectKeyFor(a.Hash)).Distinct().ToList();
        // Only hashes this process has met may already have a row worth reading first; see SeenContentHashes.
        var lookUp = accepted.Select(a => a.Hash).Distinct().Where(seen.Contains).Select(ObjectKeyFor).ToList();
        var known = lookUp.Count == 0
            ? []
            : await db.Images.Where(i => lookUp.Contains(i.ObjectKey)).ToDictionaryAsync(i => i.ContentHash, cancellationToken);
        // Before the save: if it loses a race, the retry reads the winner's row.
        foreach (var (_, _, hash) in accepted) seen.Add(hash);
        var added = new List<StoredImage>();
        foreach (var (file, check, hash) in accepted.DistinctBy(a => a.Hash).Where(a => !known.ContainsKey(a.Hash)))
        {
            var image = new StoredImage
            {
                Id = Guid.CreateVersion7(),
                ObjectKey = ObjectKeyFor(hash),
                ContentHash = hash,
                SizeBytes = file.Content.Length,
                ContentType = file.ContentType,
                FileName = FileNames.Sanitize(file.FileName),
                Format = check.Format!,
                Width = check.Width,
                Height = check.Height,
                CreatedAt = now,
            };
            db.Images.Add(image);
            known[hash] = image;
            added.Add(image);
        }
        // Saved on their own: two uploads of the same bytes at once race for the content-hash key; the loser uses the winner's row.
        for (var attempt = 1; save && added.Count > 0; attempt++)
        {
            try
            {
                await db.SaveChangesAsync(cancellationToken);
                break;
            }
            catch (DbUpdateException) when (attempt < 3)
            {
                foreach (var image in added) db.Entry(image).State = EntityState.Detached;
                var winners = await db.Images.Where(i => keys.Contains(i.ObjectKey)).ToDictionaryAsync(i => i.ContentHash, cancellationToken);
                foreach (var (hash, image) in winners) known[hash] = image;
                added = added.Where(i => !winners.ContainsKey(i.ContentHash)).ToList();
                db.Images.AddRange(added);
            }
        }
        return known;
    }
}
