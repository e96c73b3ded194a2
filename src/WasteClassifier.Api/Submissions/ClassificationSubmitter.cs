using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// Accepts images for classification: checks each file, stores the accepted ones in the object store
/// (keyed by content hash, so a retried upload never duplicates), records them as queued and sends
/// <see cref="ClassifyImage"/>. Refused files are reported per file and leave no trace.
/// </summary>
public sealed class ClassificationSubmitter(
    ClassifierDbContext db,
    IObjectStore store,
    ClassifyCommandSender sender,
    UploadOptions options,
    TimeProvider clock,
    ILogger<ClassificationSubmitter> logger)
{
    public async Task<SubmissionResult> SubmitAsync(IReadOnlyList<UploadedImage> files, string? source, string? idempotencyKey, CancellationToken cancellationToken)
    {
        if (idempotencyKey is not null && await ReplayAsync(idempotencyKey, cancellationToken) is { } replay) return replay;

        var rejected = new List<RejectedImage>();
        var accepted = new List<(UploadedImage File, ImageCheck Check, string Hash)>();
        var limits = new ImageLimits { MaxPixels = options.MaxPixels };
        foreach (var file in files)
        {
            var refusal = Check(file, limits, out var check);
            if (refusal is not null) rejected.Add(refusal);
            else accepted.Add((file, check, Convert.ToHexStringLower(SHA256.HashData(file.Content))));
        }
        if (accepted.Count == 0) return new SubmissionResult([], rejected, false);

        // Store first: a row is only ever recorded for bytes that are already in the object store.
        await Task.WhenAll(accepted.DistinctBy(a => a.Hash).Select(a => store.PutAsync(ObjectKeyFor(a.Hash), a.File.Content, a.File.ContentType ?? "application/octet-stream", cancellationToken)));

        var now = clock.GetUtcNow().UtcDateTime;
        var images = await FindOrAddImagesAsync(accepted, now, cancellationToken);
        var rows = accepted.Select((a, position) => new Classification
        {
            Id = Guid.CreateVersion7(),
            ImageId = images[a.Hash].Id,
            Source = source,
            Status = ClassificationStatus.Queued,
            IdempotencyKey = idempotencyKey,
            IdempotencyIndex = position,
            // Distinct timestamps keep "newest first" stable inside one request.
            CreatedAt = now.AddTicks(position * 10),
        }).ToList();
        db.Classifications.AddRange(rows);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException) when (idempotencyKey is not null)
        {
            // A concurrent request with the same key won the race: answer with its rows.
            db.ChangeTracker.Clear();
            return await ReplayAsync(idempotencyKey, cancellationToken) ?? throw new InvalidOperationException("idempotency conflict without rows");
        }

        await SendAsync(rows, images.Values.ToDictionary(i => i.Id, i => i.ObjectKey), cancellationToken);
        var items = rows.Select((row, k) => new AcceptedImage(row.Id, row.Status, UrlFor(row.Id), FileNames.Sanitize(accepted[k].File.FileName))).ToList();
        logger.LogInformation("Accepted {Accepted} image(s), refused {Rejected}, source {Source}", items.Count, rejected.Count, source);
        return new SubmissionResult(items, rejected, false);
    }

    public const string FileTooLarge = "file_too_large";

    public static string UrlFor(Guid id) => $"/v1/classifications/{id}";

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

    private async Task<Dictionary<string, StoredImage>> FindOrAddImagesAsync(List<(UploadedImage File, ImageCheck Check, string Hash)> accepted, DateTime now, CancellationToken cancellationToken)
    {
        var keys = accepted.Select(a => ObjectKeyFor(a.Hash)).Distinct().ToList();
        var known = await db.Images.Where(i => keys.Contains(i.ObjectKey)).ToDictionaryAsync(i => i.ContentHash, cancellationToken);
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
        }
        return known;
    }

    private async Task SendAsync(List<Classification> rows, Dictionary<Guid, string> objectKeys, CancellationToken cancellationToken)
    {
        try
        {
            await sender.SendAsync(rows, objectKeys, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The rows are recorded; the re-publisher sends them once the broker is back.
            logger.LogWarning(e, "Could not send {Count} classify message(s); they stay queued for the re-publisher", rows.Count);
        }
    }

    private async Task<SubmissionResult?> ReplayAsync(string idempotencyKey, CancellationToken cancellationToken)
    {
        var rows = await db.Classifications.Include(c => c.Image).AsNoTracking()
            .Where(c => c.IdempotencyKey == idempotencyKey).OrderBy(c => c.IdempotencyIndex).ToListAsync(cancellationToken);
        if (rows.Count == 0) return null;
        return new SubmissionResult(rows.Select(r => new AcceptedImage(r.Id, r.Status, UrlFor(r.Id), r.Image?.FileName)).ToList(), [], true);
    }
}
