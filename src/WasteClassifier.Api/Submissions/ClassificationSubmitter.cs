using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Ingestion;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// Accepts images for classification: takes them in through <see cref="ImageIntake"/>, records them as queued
/// and sends ClassifyImage. Refused files are reported per file and leave no trace.
/// </summary>
public sealed class ClassificationSubmitter(
    ClassifierDbContext db,
    ImageIntake intake,
    ClassifyCommandSender sender,
    DuplicateFrames duplicates,
    ClassificationResultWaiter waiter,
    TimeProvider clock,
    ILogger<ClassificationSubmitter> logger,
    IdempotencyOptions? idempotency = null)
{
    private readonly IdempotencyOptions _idempotency = idempotency ?? IdempotencyOptions.Default;

    // Saves tried before a lost race is reported as an error; each loser finds the winner's rows on the next try.
    private const int SaveAttempts = 3;

    public async Task<SubmissionResult> SubmitAsync(IReadOnlyList<UploadedImage> files, string? source, IdempotencyKey? idempotencyKey, CancellationToken cancellationToken)
    {
        if (idempotencyKey is not null && await ReplayAsync(idempotencyKey, files, source, cancellationToken) is { } replay) return replay;

        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await RecordAndSendAsync(files, source, idempotencyKey, cancellationToken);
            }
            catch (DbUpdateException e) when (attempt < SaveAttempts)
            {
                logger.LogDebug(e, "Save {Attempt} lost a race for an image row or idempotency key; trying again", attempt);
                // New images and their rows are saved in one transaction, which fails when a concurrent request won a race:
                // it recorded the same bytes first (the next attempt finds its image row) or used the same idempotency key
                // (answer with its rows).
                db.ChangeTracker.Clear();
                if (idempotencyKey is not null && await ReplayAsync(idempotencyKey, files, source, cancellationToken) is { } winner) return winner;
            }
        }
    }

    private async Task<SubmissionResult> RecordAndSendAsync(IReadOnlyList<UploadedImage> files, string? source, IdempotencyKey? idempotencyKey, CancellationToken cancellationToken)
    {
        var (accepted, rejected) = await intake.TakeAsync(files, saveNewImages: false, cancellationToken);
        if (accepted.Count == 0) return new SubmissionResult([], rejected, false);
        // The objects are stored: their image rows are saved below, whether or not the client is still there.
        using var recording = new AfterClientAbort(cancellationToken);

        var now = clock.GetUtcNow().UtcDateTime;
        var fingerprint = idempotencyKey is null ? null : IdempotencyFingerprints.Of(files, rejected);
        var rows = accepted.Select((a, position) => new Classification
        {
            Id = Guid.CreateVersion7(),
            ImageId = a.Image.Id,
            Source = source,
            FileName = FileNames.Sanitize(a.File.FileName),
            Status = ClassificationStatus.Queued,
            IdempotencyKey = idempotencyKey?.Value,
            IdempotencyScope = idempotencyKey?.Scope ?? "",
            IdempotencyFingerprint = fingerprint,
            // The file's position in the request, not among the accepted: a replay can then say which files these were.
            IdempotencyIndex = a.File.Index,
            // Distinct timestamps keep "newest first" stable inside one request.
            CreatedAt = now.AddTicks(position * 10),
        }).ToList();
        var toSend = await duplicates.MarkAsync(rows, null, recording.Token);
        ClassifyCommandSender.StampBeforeInsert(toSend, now);
        db.Classifications.AddRange(rows);
        // New image rows (added by the intake) and the classifications: one round trip, one transaction.
        try
        {
            await db.SaveChangesAsync(recording.Token);
        }
        catch (Exception e) when (e is DbUpdateException || CommitOutcomes.Unknown(e))
        {
            if (!await SavedAnywayAsync(rows, recording.Token)) throw;
            // The commit reached PostgreSQL but its answer was lost; the retrying strategy inserted the same rows again and
            // met their own keys, or its tries ran out (a 503, and the client's retry recorded a second set). They are
            // saved: send them, rather than record a second set and leave this one unsent (the re-publisher would have
            // classified it again, minutes later).
            logger.LogWarning(e, "Saved {Count} classification(s) whose commit was not acknowledged; sending them", rows.Count);
            db.ChangeTracker.AcceptAllChanges();
        }
        // Before the send, so no worker can announce them first: this process's long polls need not read them.
        waiter.RecordQueued(toSend.Select(r => r.Id));

        await SendAsync(toSend, OutgoingImage.Of(accepted), cancellationToken);
        var items = rows.Select((row, k) => new AcceptedImage(row.Id, row.Status, UrlFor(row.Id), FileNames.Sanitize(accepted[k].File.FileName), accepted[k].File.Index)).ToList();
        logger.LogInformation("Accepted {Accepted} image(s), refused {Rejected}, source {Source}", items.Count, rejected.Count, source);
        return new SubmissionResult(items, rejected, false);
    }

    public static string UrlFor(Guid id) => $"/v1/classifications/{id}";

    /// <summary>
    /// Whether a save that failed committed all the same. The ids are new (version 7, made by this request): found, they
    /// are these rows, which one transaction saved together. Asked only after a failed save.
    /// </summary>
    private async Task<bool> SavedAnywayAsync(List<Classification> rows, CancellationToken cancellationToken)
    {
        var ids = rows.Select(r => r.Id).ToList();
        return await CommitOutcomes.ReadOnceAsync(db, ct => db.Classifications.AsNoTracking().CountAsync(c => ids.Contains(c.Id), ct), cancellationToken) == rows.Count;
    }

    private async Task SendAsync(IReadOnlyList<Classification> rows, Dictionary<Guid, OutgoingImage> images, CancellationToken cancellationToken)
    {
        try
        {
            await sender.SendStampedAsync(rows, images, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The rows are recorded; the re-publisher sends them once the broker is back.
            logger.LogWarning(e, "Could not send {Count} classify message(s); they stay queued for the re-publisher", rows.Count);
        }
    }

    /// <summary>
    /// The rows an earlier request under this key recorded, answered again; or, when these files or this source are not
    /// that request's, a refusal (the key was reused: these files would otherwise never be stored). Null: none.
    /// </summary>
    private async Task<SubmissionResult?> ReplayAsync(IdempotencyKey idempotencyKey, IReadOnlyList<UploadedImage> files, string? source, CancellationToken cancellationToken)
    {
        var (key, scope) = (idempotencyKey.Value, idempotencyKey.Scope);
        // Rows written before keys were scoped and fingerprinted are replayed as they were then: for any caller.
        var rows = await db.Classifications.Include(c => c.Image).AsNoTracking()
            .Where(c => c.IdempotencyKey == key && (c.IdempotencyScope == scope || c.IdempotencyFingerprint == null))
            .OrderBy(c => c.IdempotencyIndex).ToListAsync(cancellationToken);
        if (rows.Count == 0) return null;
        if (await ForgetExpiredAsync(rows, cancellationToken) is { Count: 0 }) return null;
        if (rows[0].IdempotencyFingerprint is { } fingerprint && !IdempotencyFingerprints.Matches(fingerprint, rows, files, source))
        {
            logger.LogInformation("Idempotency-Key reused for another request (scope {Scope}); refused", scope.Length == 0 ? "(none)" : scope);
            return new SubmissionResult([], [], false, KeyReused: true);
        }
        return new SubmissionResult(rows.Select(r => new AcceptedImage(r.Id, r.Status, UrlFor(r.Id), r.FileName ?? r.Image?.FileName, r.IdempotencyIndex)).ToList(), [], true);
    }

    /// <summary>
    /// Takes out of <paramref name="rows"/> (and clears the keys of) the requests under this key past
    /// <see cref="IdempotencyOptions.Retention"/>, which <see cref="IdempotencySweeper"/> has not reached yet: the key is free
    /// for this request. A request's rows share key and scope, and expire together with the first of them (as the sweep
    /// clears them), so a retry is never answered with part of a request.
    /// </summary>
    /// <remarks>
    /// Cleared here, before this request's insert, or the unique index would refuse it. Only the rows read are cleared (by
    /// id): a request that saved under the key meanwhile keeps its rows, this request's insert then fails on the index, and
    /// the retry in <see cref="SubmitAsync"/> answers with that request's rows as for any concurrent repeat.
    /// </remarks>
    private async Task<List<Classification>> ForgetExpiredAsync(List<Classification> rows, CancellationToken cancellationToken)
    {
        var expiredBefore = _idempotency.ExpiredBefore(clock.GetUtcNow().UtcDateTime);
        var expired = rows.GroupBy(r => r.IdempotencyScope).Where(g => g.Min(r => r.CreatedAt) < expiredBefore).SelectMany(g => g).Select(r => r.Id).ToList();
        if (expired.Count == 0) return rows;
        await IdempotencySweeper.ClearKeysAsync(db, expired, cancellationToken);
        rows.RemoveAll(r => expired.Contains(r.Id));
        return rows;
    }
}
