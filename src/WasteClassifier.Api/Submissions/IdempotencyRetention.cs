using Microsoft.EntityFrameworkCore;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// <c>Api:IdempotencyRetentionHours</c> (default 24): how long an Idempotency-Key answers a retry, both an
/// <c>idempotent_requests</c> row's and the key of classification rows. Past that the key is free for a new request;
/// <see cref="IdempotencySweeper"/> deletes such records and clears such rows' keys.
/// </summary>
public sealed record IdempotencyOptions(TimeSpan Retention)
{
    public const string RetentionHoursKey = "Api:IdempotencyRetentionHours";
    public const int DefaultRetentionHours = 24;

    public static readonly IdempotencyOptions Default = new(TimeSpan.FromHours(DefaultRetentionHours));

    public static IdempotencyOptions From(IConfiguration configuration)
    {
        var hours = configuration.GetValue(RetentionHoursKey, (double)DefaultRetentionHours);
        if (!(hours > 0) || double.IsInfinity(hours) || hours > TimeSpan.MaxValue.TotalHours / 2)
            throw new InvalidOperationException($"{RetentionHoursKey} must be more than 0 hours; got {hours}");
        return new IdempotencyOptions(TimeSpan.FromHours(hours));
    }

    /// <summary>Rows created before this are expired at <paramref name="now"/>.</summary>
    public DateTime ExpiredBefore(DateTime now) => now - Retention;
}

/// <summary>
/// Now and then deletes expired <c>idempotent_requests</c> rows and clears the Idempotency-Key of expired classification
/// rows (a lookup already ignores them; this keeps the table and the key index small).
/// </summary>
public sealed class IdempotencySweeper(IServiceScopeFactory scopes, IdempotencyOptions options, TimeProvider clock, ILogger<IdempotencySweeper> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromMinutes(5);

    /// <summary>Expired keyed classification rows looked at per statement: each UPDATE stays short, whatever the backlog.</summary>
    public int ClassificationBatch { get; init; } = 1000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Interval, clock, stoppingToken);
                await SweepAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning("Sweeping expired Idempotency-Keys failed: {Reason}", e.Message);
            }
        }
    }

    /// <returns>How many expired records were deleted plus how many classification rows had their key cleared.</returns>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var before = options.ExpiredBefore(clock.GetUtcNow().UtcDateTime);
        // One indexed range delete (ix_idempotent_requests_created_at); run every few minutes, it finds few rows.
        var total = await db.IdempotentRequests.Where(r => r.CreatedAt < before).ExecuteDeleteAsync(cancellationToken);
        if (total > 0) logger.LogInformation("Deleted {Count} expired Idempotency-Key record(s)", total);
        var cleared = await ClearExpiredClassificationKeysAsync(db, before, cancellationToken);
        if (cleared > 0) logger.LogInformation("Cleared the expired Idempotency-Key of {Count} classification(s)", cleared);
        return total + cleared;
    }

    /// <summary>
    /// Clears the keys of classification rows made before <paramref name="before"/>, in batches: each finds up to
    /// <see cref="ClassificationBatch"/> of them oldest first (ix_classifications_idempotency_created_at, partial on keyed
    /// rows) and clears every row sharing their key and scope. Those rows are one request's, saved a few ticks apart: cleared
    /// whole, a retry never finds part of a request (the submitter expires a request by its first row too).
    /// </summary>
    private async Task<int> ClearExpiredClassificationKeysAsync(ClassifierDbContext db, DateTime before, CancellationToken cancellationToken)
    {
        var total = 0;
        while (true)
        {
            int cleared;
            if (db.Database.IsNpgsql())
            {
                // The same rows as below, locked in id order first (see ClearKeysInIdOrderAsync).
                cleared = await ClearKeysInIdOrderAsync(db, """
                    idempotency_key IS NOT NULL AND (idempotency_key, idempotency_scope) IN (
                        SELECT idempotency_key, idempotency_scope FROM classifications
                        WHERE idempotency_key IS NOT NULL AND created_at < {0} ORDER BY created_at LIMIT {1})
                    """, [before, ClassificationBatch], cancellationToken);
            }
            else
            {
                var batch = db.Classifications.Where(e => e.IdempotencyKey != null && e.CreatedAt < before).OrderBy(e => e.CreatedAt).Take(ClassificationBatch);
                cleared = await ClearKeysAsync(db.Classifications.Where(c => c.IdempotencyKey != null
                    && batch.Any(e => e.IdempotencyKey == c.IdempotencyKey && e.IdempotencyScope == c.IdempotencyScope)), cancellationToken);
            }
            if (cleared == 0) return total;
            total += cleared;
        }
    }

    /// <summary>
    /// Forgets the Idempotency-Key of the rows <paramref name="ids"/> (a submitter's expired request), as
    /// <see cref="ClearKeysAsync(IQueryable{Classification}, CancellationToken)"/> does; on PostgreSQL locking them in id order first.
    /// </summary>
    public static Task<int> ClearKeysAsync(ClassifierDbContext db, IReadOnlyCollection<Guid> ids, CancellationToken cancellationToken) =>
        db.Database.IsNpgsql()
            ? ClearKeysInIdOrderAsync(db, "id = ANY({0})", [ids.ToArray()], cancellationToken)
            : ClearKeysAsync(db.Classifications.Where(c => ids.Contains(c.Id)), cancellationToken);

    /// <summary>
    /// PostgreSQL: clears the keys of the rows <paramref name="rows"/> (SQL over classifications, with <c>{n}</c> parameters)
    /// picks, each locked in id order before any is updated. A plain multi-row UPDATE locks its rows in its plan's order: the
    /// sweep's (by key, or the table's order) and a submitter's forgetting the same expired request (by id, the primary key)
    /// could each hold one of the request's rows and wait for the other's, a deadlock PostgreSQL ends by aborting one of them
    /// after deadlock_timeout. With one order, the later statement waits for the earlier one, then rechecks the rows, and
    /// skips those whose key is gone. SQLite has one writer at a time, and no row locks.
    /// </summary>
    private static Task<int> ClearKeysInIdOrderAsync(ClassifierDbContext db, string rows, object[] parameters, CancellationToken cancellationToken)
    {
        // rows is SQL of this class's own; the values go as parameters.
        var statement = $"""
            UPDATE classifications SET idempotency_key = NULL, idempotency_scope = '', idempotency_fingerprint = NULL
            WHERE id IN (SELECT id FROM classifications WHERE {rows} ORDER BY id FOR UPDATE)
            """;
        return db.Database.ExecuteSqlRawAsync(statement, parameters, cancellationToken);
    }

    /// <summary>
    /// Forgets the Idempotency-Key of <paramref name="rows"/>, which stay as they are otherwise: the unique index no longer
    /// holds the key, and a request under it is a new one. Scope and fingerprint go with it, as on rows sent without a key.
    /// </summary>
    public static Task<int> ClearKeysAsync(IQueryable<Classification> rows, CancellationToken cancellationToken) =>
        rows.ExecuteUpdateAsync(s => s
            .SetProperty(c => c.IdempotencyKey, (string?)null)
            .SetProperty(c => c.IdempotencyScope, "")
            .SetProperty(c => c.IdempotencyFingerprint, (string?)null), cancellationToken);
}
