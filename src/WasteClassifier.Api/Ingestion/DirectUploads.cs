using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Security;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Api.Ingestion;

/// <summary>
/// Direct-to-storage uploads: <see cref="CreateAsync"/> hands out upload ids with presigned PUT URLs, the client puts
/// the bytes into the object store itself, and <see cref="CommitAsync"/> checks each staged object the way
/// <see cref="ImageIntake"/> checks a multipart file, then records and queues it. A commit is atomic (the
/// classification rows and the uploads' new status are saved together) and repeatable (a committed id answers
/// with its classification again).
/// </summary>
public sealed class DirectUploads(
    ClassifierDbContext db,
    IObjectStore store,
    ImageIntake intake,
    ClassifyCommandSender sender,
    DuplicateFrames duplicates,
    UploadOptions uploads,
    IngestionOptions options,
    TimeProvider clock,
    ILogger<DirectUploads> logger)
{
    public sealed record FileRequest(string? Filename, string? ContentType, long? Size);

    public sealed record Created(DirectUpload Upload, Uri? PresignedUrl);

    public sealed record CommitItem(Guid Id, string Status, Guid? ClassificationId, string? ClassificationStatus, string? Url,
        Guid? DuplicateOf, string? Filename, string? Error, string? Message);

    /// <summary>The items, or why the whole commit was refused (413: it would hold more than a request may).</summary>
    public sealed record CommitOutcome(IReadOnlyList<CommitItem> Items, ApiError? TooLarge = null);

    public const string Accepted = "accepted";
    public const string Refused = "refused";
    public const string CommitTooLarge = "commit_too_large";

    public static string StagingKeyFor(Guid id) => $"uploads/{id:N}";

    public async Task<IReadOnlyList<Created>> CreateAsync(IReadOnlyList<FileRequest> files, string? source, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var expiry = TimeSpan.FromSeconds(Math.Max(1, options.UploadExpirySeconds));
        var rows = files.Select(f =>
        {
            var id = Guid.NewGuid();
            return new DirectUpload
            {
                Id = id,
                ObjectKey = StagingKeyFor(id),
                FileName = FileNames.Sanitize(f.Filename),
                ContentType = f.ContentType,
                DeclaredSize = f.Size,
                Source = source,
                CreatedAt = now,
                ExpiresAt = now + expiry,
            };
        }).ToList();
        var urls = await Task.WhenAll(rows.Select(r => store.PresignPutAsync(r.ObjectKey, expiry, cancellationToken)));
        db.DirectUploads.AddRange(rows);
        await db.SaveChangesAsync(cancellationToken);
        return rows.Select((r, k) => new Created(r, urls[k])).ToList();
    }

    /// <summary>The API-served PUT for stores without presigned URLs (the embedded folder store).</summary>
    public async Task<(bool Ok, int Status, string? Error, string? Message)> PutContentAsync(Guid id, byte[] content, CancellationToken cancellationToken)
    {
        var upload = await db.DirectUploads.AsNoTracking().FirstOrDefaultAsync(u => u.Id == id, cancellationToken);
        if (upload is null) return (false, StatusCodes.Status404NotFound, "not_found", $"no upload with id {id}");
        if (upload.Status != DirectUploadStatus.Pending || upload.ExpiresAt < clock.GetUtcNow().UtcDateTime)
            return (false, StatusCodes.Status409Conflict, "upload_closed", $"upload {id} is {(upload.Status == DirectUploadStatus.Pending ? DirectUploadStatus.Expired : upload.Status)}; request a new one");
        await store.PutAsync(upload.ObjectKey, content, upload.ContentType ?? "application/octet-stream", cancellationToken);
        return (true, StatusCodes.Status200OK, null, null);
    }

    /// <param name="source">Recorded for every upload; null: each upload's own, the one it was created with.</param>
    /// <param name="boundTo">
    /// With no <paramref name="source"/>, the sources the caller's key is bound to (see <see cref="SourceBindings"/>): each
    /// upload's own source is held to them, and one that is not allowed is refused (not final: a commit naming an allowed
    /// source may still take it).
    /// </param>
    public async Task<CommitOutcome> CommitAsync(IReadOnlyList<Guid> ids, string? source, int? duplicateWindowSeconds, CancellationToken cancellationToken,
        IReadOnlyList<string>? boundTo = null)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var rows = await db.DirectUploads.Where(u => ids.Contains(u.Id)).ToDictionaryAsync(u => u.Id, cancellationToken);
        var answers = new Dictionary<Guid, CommitItem>();
        var refusals = new Dictionary<Guid, (string Error, string Message, bool Final)>();
        var open = new List<DirectUpload>();
        var sources = new Dictionary<Guid, string?>();
        foreach (var id in ids)
        {
            if (!rows.TryGetValue(id, out var row)) refusals[id] = ("not_found", $"no upload with id {id}", false);
            else if (row.Status == DirectUploadStatus.Refused) refusals[id] = (row.ErrorCode ?? "refused", row.Error ?? "the upload was refused", false);
            else if (row.Status == DirectUploadStatus.Expired || (row.Status == DirectUploadStatus.Pending && row.ExpiresAt < now))
                refusals[id] = ("upload_expired", $"upload {id} expired at {row.ExpiresAt:O}Z; request a new one", false);
            else if (row.Status == DirectUploadStatus.Pending)
            {
                var resolved = source ?? row.Source;
                if (source is null && boundTo is { Count: > 0 } && SourceBindings.Resolve(boundTo, row.Source, out resolved) is { } refusal)
                {
                    refusals[id] = (refusal.Error, refusal.Message, false);
                    continue;
                }
                sources[id] = resolved;
                open.Add(row);
            }
        }

        // Sizes first (no download): a missing object is not an error of the upload yet, the client may still PUT it.
        var sizes = await Task.WhenAll(open.Select(u => ReadingAsync(u.ObjectKey, () => store.SizeAsync(u.ObjectKey, cancellationToken))));
        var toRead = new List<(DirectUpload Upload, long Size)>();
        foreach (var (upload, size) in open.Zip(sizes))
        {
            if (size is null) refusals[upload.Id] = NotUploaded(upload.Id);
            else if (upload.DeclaredSize is { } declared && declared != size)
                refusals[upload.Id] = ("size_mismatch", $"{size:N0} bytes were uploaded for {upload.Id} but {declared:N0} were announced", false);
            else if (size > uploads.MaxFileBytes)
                refusals[upload.Id] = (ImageIntake.FileTooLarge, $"the file is {size:N0} bytes; the limit is {uploads.MaxFileBytes:N0}", true);
            else toRead.Add((upload, size.Value));
        }
        // The images are held in memory together, as a multipart request's are: the same limit, checked before any read.
        var total = toRead.Sum(r => r.Size);
        if (total > uploads.MaxRequestBytes)
            return new CommitOutcome([], new ApiError(CommitTooLarge,
                $"the {toRead.Count} uploads to check hold {total:N0} bytes; one commit may hold at most {uploads.MaxRequestBytes:N0}: commit them in smaller groups"));

        var files = new List<(DirectUpload Upload, UploadedImage File)>();
        using (var gate = new SemaphoreSlim(8))
        {
            var reads = toRead.Select(async r =>
            {
                await gate.WaitAsync(cancellationToken);
                try
                {
                    // Never more than was checked: the presigned URL still works, so the object may have been rewritten since.
                    var bytes = await ReadingAsync(r.Upload.ObjectKey, () => store.GetAsync(r.Upload.ObjectKey, r.Size, cancellationToken));
                    return bytes is null ? new StagedRead(r.Upload, null, NotUploaded(r.Upload.Id))
                        : bytes.LongLength != r.Size ? new StagedRead(r.Upload, null, Changed(r.Upload.Id, r.Size))
                        : new StagedRead(r.Upload, bytes, null);
                }
                catch (ObjectTooLargeException)
                {
                    return new StagedRead(r.Upload, null, Changed(r.Upload.Id, r.Size));
                }
                finally
                {
                    gate.Release();
                }
            }).ToList();
            foreach (var (upload, bytes, refusal) in await Task.WhenAll(reads))
            {
                if (refusal is { } r) refusals[upload.Id] = r;
                else files.Add((upload, new UploadedImage(files.Count, upload.FileName, upload.ContentType, bytes!.LongLength, bytes)));
            }
        }

        // A concurrent commit of the same id may have taken (and deleted) its object since this one read the row: that is
        // no reason to PUT again. Start over, as after a lost save race, to answer with that commit's outcome.
        var missing = open.Where(u => refusals.TryGetValue(u.Id, out var r) && r.Error == NotUploadedError).Select(u => u.Id).ToList();
        if (missing.Count > 0 && await db.DirectUploads.AnyAsync(u => missing.Contains(u.Id) && u.Status != DirectUploadStatus.Pending, cancellationToken))
        {
            db.ChangeTracker.Clear();
            logger.LogInformation("Upload(s) committed concurrently while this commit checked them; answering with the stored outcome");
            return await CommitAsync(ids, source, duplicateWindowSeconds, cancellationToken, boundTo);
        }

        // The same checks, content-hash key and image rows as a multipart upload.
        var (accepted, rejected) = files.Count == 0 ? ([], []) : await intake.TakeAsync(files.Select(f => f.File).ToList(), cancellationToken);
        foreach (var r in rejected) refusals[files[r.Index].Upload.Id] = (r.Error, r.Message, true);

        var created = accepted.Select((a, position) =>
        {
            var upload = files[a.File.Index].Upload;
            var row = new Classification
            {
                Id = Guid.CreateVersion7(),
                ImageId = a.Image.Id,
                Source = sources[upload.Id],
                FileName = upload.FileName,
                Status = ClassificationStatus.Queued,
                // Distinct timestamps keep "newest first" stable inside one commit.
                CreatedAt = now.AddTicks(position * 10),
            };
            return (Upload: upload, Row: row);
        }).ToList();
        var toSend = await duplicates.MarkAsync(created.Select(c => c.Row).ToList(), duplicateWindowSeconds, cancellationToken);
        ClassifyCommandSender.StampBeforeInsert(toSend, now);

        foreach (var (upload, row) in created)
        {
            upload.Status = DirectUploadStatus.Committed;
            upload.ClassificationId = row.Id;
            upload.CommittedAt = now;
            // A presigned URL cannot be revoked: whatever it PUTs after this commit is deleted once it has expired.
            upload.CleanupAt = upload.ExpiresAt;
            db.Classifications.Add(row);
        }
        foreach (var upload in open.Where(u => refusals.TryGetValue(u.Id, out var r) && r.Final))
        {
            upload.Status = DirectUploadStatus.Refused;
            upload.ErrorCode = refusals[upload.Id].Error;
            upload.Error = refusals[upload.Id].Message;
            upload.CleanupAt = upload.ExpiresAt;
        }
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException e)
        {
            if (created.Count > 0 && await SavedAnywayAsync(created.Select(c => c.Row.Id).ToList(), cancellationToken))
            {
                // The commit reached PostgreSQL but its answer was lost; the retrying strategy ran the save again and met its
                // own rows. They are saved: send them now, as a multipart submission does (stamped as sent, only the
                // re-publisher's rule for lost messages would have sent them, minutes later).
                logger.LogWarning(e, "Saved {Count} committed upload(s) whose commit was not acknowledged; sending them", created.Count);
                db.ChangeTracker.AcceptAllChanges();
            }
            else if (e is DbUpdateConcurrencyException)
            {
                // A concurrent commit of the same ids won: nothing of this one was saved; answer with the winner's outcome.
                db.ChangeTracker.Clear();
                logger.LogInformation("Concurrent commit of the same upload(s); answering with the stored outcome");
                return await CommitAsync(ids, source, duplicateWindowSeconds, cancellationToken, boundTo);
            }
            else throw;
        }
        catch (Exception e) when (created.Count > 0 && CommitOutcomes.Unknown(e))
        {
            // The retrying strategy ran out of tries (or the connection failed) after a COMMIT that may have gone through.
            // Answered 503 "nothing was accepted" instead, the rows (stamped as sent) waited minutes for the re-publisher's
            // rule for lost messages. Saved, they are answered and sent now.
            if (!await SavedAnywayAsync(created.Select(c => c.Row.Id).ToList(), cancellationToken)) throw;
            logger.LogWarning(e, "Saved {Count} committed upload(s) whose commit's outcome was unknown; sending them", created.Count);
            db.ChangeTracker.AcceptAllChanges();
        }

        if (toSend.Count > 0)
        {
            try
            {
                await sender.SendStampedAsync(toSend, OutgoingImage.Of(accepted), cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Could not send {Count} classify message(s); they stay queued for the re-publisher", toSend.Count);
            }
        }
        // The bytes now live under their content hash (or were refused): the staged copies are no longer needed.
        await Task.WhenAll(open.Where(u => u.Status != DirectUploadStatus.Pending).Select(u => DeleteStagedAsync(store, u.ObjectKey, logger, cancellationToken)));

        foreach (var (upload, row) in created)
            answers[upload.Id] = new CommitItem(upload.Id, Accepted, row.Id, row.Status, ClassificationSubmitter.UrlFor(row.Id), row.DuplicateOfId, upload.FileName, null, null);
        var replayIds = rows.Values.Where(u => u.Status == DirectUploadStatus.Committed && !answers.ContainsKey(u.Id)).Select(u => u.ClassificationId!.Value).ToList();
        var replayed = await db.Classifications.AsNoTracking().Where(c => replayIds.Contains(c.Id)).ToDictionaryAsync(c => c.Id, cancellationToken);
        foreach (var upload in rows.Values.Where(u => u.Status == DirectUploadStatus.Committed && !answers.ContainsKey(u.Id)))
        {
            var row = replayed.GetValueOrDefault(upload.ClassificationId!.Value);
            answers[upload.Id] = new CommitItem(upload.Id, Accepted, upload.ClassificationId, row?.Status, ClassificationSubmitter.UrlFor(upload.ClassificationId!.Value),
                row?.DuplicateOfId, upload.FileName, null, null);
        }
        foreach (var (id, (error, message, _)) in refusals)
            answers[id] = new CommitItem(id, Refused, null, null, null, null, rows.GetValueOrDefault(id)?.FileName, error, message);
        logger.LogInformation("Committed {Accepted} direct upload(s), refused {Refused}, source {Source}", created.Count, refusals.Count, source);
        // As a multipart upload counts its files. Only what this commit decided counts: a repeated commit stores
        // nothing new, and a refusal that is not final (not uploaded yet, expired, unknown id) refuses no image.
        Components.Observability.ClassifierMetrics.ImagesAccepted.Inc(created.Count);
        foreach (var (error, _, _) in refusals.Values.Where(r => r.Final)) Components.Observability.ClassifierMetrics.ImagesRejected.WithLabels(error).Inc();
        return new CommitOutcome(ids.Select(id => answers[id]).ToList());
    }

    /// <summary>
    /// Whether a save that failed committed all the same: the classification ids are new (version 7, made by this commit),
    /// so found, they are this commit's rows, which one transaction saved with the uploads' new status. Asked only after a
    /// failed save.
    /// </summary>
    private async Task<bool> SavedAnywayAsync(List<Guid> ids, CancellationToken cancellationToken) =>
        await CommitOutcomes.ReadOnceAsync(db, ct => db.Classifications.AsNoTracking().CountAsync(c => ids.Contains(c.Id), ct), cancellationToken) == ids.Count;

    /// <summary>
    /// A read of a staged object. The folder store's file errors (a failing disk, a file it may not open) are an outage of
    /// the store, as its failed writes are: 503 with Retry-After, not a 500 the client would not retry.
    /// </summary>
    private static async Task<T> ReadingAsync<T>(string key, Func<Task<T>> read)
    {
        try
        {
            return await read();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException && e is not ObjectStoreReadException)
        {
            throw new ObjectStoreReadException($"object store could not read {key}: {e.Message}", e);
        }
    }

    private readonly record struct StagedRead(DirectUpload Upload, byte[]? Content, (string Error, string Message, bool Final)? Refusal);

    private const string NotUploadedError = "not_uploaded";

    private static (string Error, string Message, bool Final) NotUploaded(Guid id) => (NotUploadedError, $"nothing has been uploaded for {id} yet; PUT the bytes to its URL first", false);

    // Not final: the upload stays pending, so the client can PUT its file once more and commit again.
    private static (string Error, string Message, bool Final) Changed(Guid id, long size) =>
        ("upload_changed", $"the object of {id} was rewritten while it was being committed (it was {size:N0} bytes when checked); PUT it once more and commit again", false);

    /// <returns>Whether the object is gone: deleted, or not there (a 404); false when the store failed (logged).</returns>
    public static async Task<bool> DeleteStagedAsync(IObjectStore store, string key, ILogger logger, CancellationToken cancellationToken) =>
        await TryDeleteStagedAsync(store, key, logger, cancellationToken) is null;

    /// <returns>Null when the object is gone: deleted, or not there (a 404); the store's failure otherwise (logged).</returns>
    public static async Task<Exception?> TryDeleteStagedAsync(IObjectStore store, string key, ILogger logger, CancellationToken cancellationToken)
    {
        try
        {
            await store.DeleteAsync(key, cancellationToken);
            return null;
        }
        catch (Exception e) when (e is Minio.Exceptions.ObjectNotFoundException or FileNotFoundException or DirectoryNotFoundException
            or HttpRequestException { StatusCode: System.Net.HttpStatusCode.NotFound })
        {
            return null;
        }
        // A cancellation the caller did not ask for is a store that hung (its client's timeout): a failed delete like any
        // other, not the end of the commit (whose rows are saved and sent) or of the housekeeping round.
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Best effort here: a leftover staged object costs space, never correctness (housekeeping tries again).
            logger.LogWarning("Could not delete staged upload {Key}: {Reason}", key, e.Message);
            return e;
        }
    }
}
