using Microsoft.EntityFrameworkCore;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Api.Ingestion;

/// <summary>
/// Two small periodic jobs: duplicates whose original has become final take its result, and direct uploads never
/// committed are removed (staged object deleted, row marked expired) once their URL can no longer be used; so is what
/// a URL wrote after its upload was committed or refused.
/// </summary>
public sealed class IngestionHousekeeping(IServiceScopeFactory scopes, IngestionOptions options, TimeProvider clock, ILogger<IngestionHousekeeping> logger) : BackgroundService
{
    // A PUT that started just before the URL expired may still be finishing.
    private static readonly TimeSpan ExpiryGrace = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Failed deletes of one staged object before housekeeping gives up on it (about 20 hours, see <see cref="RetryDelay"/>),
    /// and only on a failure that will not change by asking again (see <see cref="DeleteFailed"/>).
    /// </summary>
    public const int MaxCleanupAttempts = 12;

    /// <summary>
    /// Refusals for good in a row that giving up needs after a failure that may pass (an outage): at least this many of the
    /// <see cref="MaxCleanupAttempts"/> are always refusals, spanning 12 hours or more.
    /// </summary>
    public const int RefusalsToGiveUp = 3;

    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromHours(6);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = TimeSpan.FromSeconds(Math.Max(0.1, options.HousekeepingIntervalSeconds));
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(interval, stoppingToken);
                await ResolveDuplicatesAsync(stoppingToken);
                await ExpireUploadsAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning("Ingestion housekeeping failed: {Reason}", e.Message);
            }
        }
    }

    public async Task<int> ResolveDuplicatesAsync(CancellationToken cancellationToken)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var waiting = await db.Classifications
            .Where(d => d.DuplicateOfId != null && (d.Status == ClassificationStatus.Queued || d.Status == ClassificationStatus.Processing))
            .OrderBy(d => d.CreatedAt).Take(1000).ToListAsync(cancellationToken);
        if (waiting.Count == 0) return 0;
        var ids = waiting.Select(d => d.DuplicateOfId!.Value).Distinct().ToList();
        var originals = await db.Classifications.AsNoTracking()
            .Where(o => ids.Contains(o.Id) && (o.Status == ClassificationStatus.Completed || o.Status == ClassificationStatus.Failed))
            .ToDictionaryAsync(o => o.Id, cancellationToken);
        var now = clock.GetUtcNow().UtcDateTime;
        var resolved = 0;
        foreach (var duplicate in waiting)
        {
            if (!originals.TryGetValue(duplicate.DuplicateOfId!.Value, out var original)) continue;
            DuplicateFrames.CopyResult(duplicate, original, now);
            resolved++;
        }
        // A duplicate a worker claimed meanwhile (the re-publisher sends stuck ones) is that worker's to finish: its
        // attempt count no longer matches, and the rest are saved without it.
        if (resolved > 0) resolved -= (await db.SaveClaimedResultsAsync(cancellationToken)).Count;
        return resolved;
    }

    /// <returns>How many uploads were expired, or had their staged object deleted after their commit or refusal.</returns>
    public async Task<int> ExpireUploadsAsync(CancellationToken cancellationToken)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var store = scope.ServiceProvider.GetRequiredService<IObjectStore>();
        var now = clock.GetUtcNow().UtcDateTime;
        var before = now - ExpiryGrace;
        var expired = await db.DirectUploads.Where(u => u.Status == DirectUploadStatus.Pending && u.ExpiresAt < before)
            .OrderBy(u => u.ExpiresAt).Take(200).ToListAsync(cancellationToken);
        // A staged object the store could not delete (it is down) is left for a later round, as a closed upload's is, after
        // those due before it: the store is asked again a minute later (then less and less often, see DeleteFailed), not
        // every round, and objects it keeps refusing do not hold up the others. Marked done regardless, the object was never
        // deleted.
        foreach (var upload in expired)
        {
            upload.Status = DirectUploadStatus.Expired;
            if (await DirectUploads.TryDeleteStagedAsync(store, upload.ObjectKey, logger, cancellationToken) is { } failure) DeleteFailed(upload, failure, now);
        }
        // Saved apart from the closed uploads' bookkeeping below: a commit racing one of these rolls back this save only.
        var expiredCount = 0;
        if (expired.Count > 0)
        {
            try
            {
                await db.SaveChangesAsync(cancellationToken);
                expiredCount = expired.Count;
                logger.LogInformation("Expired {Count} uncommitted upload(s)", expired.Count);
            }
            catch (DbUpdateConcurrencyException)
            {
                // A commit took one of them meanwhile; the next round expires the rest.
                db.ChangeTracker.Clear();
            }
        }
        // Committed or refused: the commit deleted the staged object, but a presigned PUT after it (S3 cannot revoke the URL)
        // wrote it again, and nothing else would ever delete it.
        var closed = await db.DirectUploads.Where(u => u.CleanupAt != null && u.CleanupAt < before)
            .OrderBy(u => u.CleanupAt).Take(200).ToListAsync(cancellationToken);
        var cleaned = 0;
        foreach (var upload in closed)
        {
            if (await DirectUploads.TryDeleteStagedAsync(store, upload.ObjectKey, logger, cancellationToken) is { } failure)
            {
                DeleteFailed(upload, failure, now);
                continue;
            }
            upload.CleanupAt = null;
            cleaned++;
        }
        if (closed.Count > 0) await db.SaveChangesAsync(cancellationToken);
        return expiredCount + cleaned;
    }

    /// <summary>
    /// The wait after the given failed delete: a minute, doubling with each, at most <see cref="MaxRetryDelay"/>. An object
    /// the store refuses every time was asked again every minute, for ever.
    /// </summary>
    public static TimeSpan RetryDelay(int attempts) =>
        TimeSpan.FromMinutes(Math.Min(Math.Pow(2, Math.Max(0, attempts - 1)), MaxRetryDelay.TotalMinutes));

    /// <summary>
    /// Counts the failed delete and sets when to try again. Given up only once <see cref="MaxCleanupAttempts"/> have failed
    /// and this one for good (e.g. 403 AccessDenied): a store that is down (503, a refused connection, a timeout) is asked
    /// again every <see cref="MaxRetryDelay"/> until it is back, however long; a weekend's outage gave up every object.
    /// A failure that may pass takes the count back to at most <see cref="RefusalsToGiveUp"/> short of the limit, so the
    /// last refusals are in a row: 11 failures of an outage and then one 403 (a policy changed as the store came back) gave
    /// up at once. The streak has no column of its own: cleanup_attempts carries it, hence a failure that may pass lowers it.
    /// </summary>
    private void DeleteFailed(DirectUpload upload, Exception failure, DateTime now)
    {
        var attempts = upload.CleanupAttempts + 1;
        var permanent = ObjectStoreErrors.IsPermanent(failure);
        upload.CleanupAttempts = permanent ? attempts : Math.Min(attempts, MaxCleanupAttempts - RefusalsToGiveUp);
        if (permanent && attempts >= MaxCleanupAttempts)
        {
            // Given up, the row kept: its cleanup_attempts tells an operator which staged object is left to delete by hand.
            upload.CleanupAt = null;
            logger.LogError("Gave up deleting staged object {Key} of upload {Id} after {Attempts} counted failed deletes, at least the last {InARow} refused for good, the last: {Reason}; delete it by hand",
                upload.ObjectKey, upload.Id, upload.CleanupAttempts, RefusalsToGiveUp, failure.Message);
            return;
        }
        // Due once the sweep's grace has passed too, which it adds to CleanupAt. The wait follows every failure, those taken
        // back included: an outage is still asked every MaxRetryDelay, not more often.
        upload.CleanupAt = now + RetryDelay(attempts) - ExpiryGrace;
    }
}
