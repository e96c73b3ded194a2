using System.Data.Common;
using System.Reflection;
using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;
using Npgsql;

namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>
/// A worker's claim of a batch: the rows it marked processing, or failed for too many attempts (status failed, error code
/// <see cref="ClassificationClaims.TooManyAttempts"/>), and the ids that have no row at all.
/// </summary>
public sealed record ClassificationClaim(IReadOnlyList<Classification> Claimed, IReadOnlyList<Guid> Missing);

/// <summary>
/// Claims a batch of classifications for a worker: every unfinished row among the ids is marked processing (start time,
/// worker, one more attempt) and returned tracked, with its image, so the results' save writes only what changes next.
/// Finished rows (redeliveries) are left alone. A row still processing is claimed again (its worker may have died); the
/// attempt count, a concurrency token, then lets only the latest claim's result be saved. A row already claimed
/// <c>maxAttempts</c> times is failed by the claim instead: a batch that stops its worker (out of memory, a native crash) is
/// redelivered again and again, and the row must end.
/// </summary>
public static class ClassificationClaims
{
    public const string TooManyAttempts = "too_many_attempts";

    public static string TooManyAttemptsMessage(int maxAttempts) =>
        $"claimed {maxAttempts} times without a result (each time its batch failed or stopped the worker); not tried again";

    public static Task<ClassificationClaim> ClaimAsync(this ClassifierDbContext db, IReadOnlyCollection<Guid> ids, string workerId, DateTime startedAt,
        int maxAttempts, CancellationToken cancellationToken) =>
        db.Database.IsNpgsql()
            ? ClaimInOneStatementAsync(db, ids, workerId, startedAt, maxAttempts, cancellationToken)
            : ClaimByReadThenUpdateAsync(db, ids, workerId, startedAt, maxAttempts, cancellationToken);

    /// <summary>
    /// Saves a batch's results, except for rows claimed again since this context claimed them: their attempt count, the
    /// concurrency token, no longer matches, so the later claim's result is the one kept, whichever finishes first. Returns
    /// those rows' ids (detached, unsaved). The save is one transaction, refused whole at the first such row, so each one
    /// costs one more try of it, paid only when a duplicate raced.
    /// </summary>
    public static async Task<IReadOnlySet<Guid>> SaveClaimedResultsAsync(this ClassifierDbContext db, CancellationToken cancellationToken)
    {
        var superseded = new HashSet<Guid>();
        while (true)
        {
            try
            {
                await db.SaveChangesAsync(cancellationToken);
                return superseded;
            }
            catch (DbUpdateConcurrencyException e) when (e.Entries.Count > 0 && e.Entries.All(entry => entry.Entity is Classification))
            {
                foreach (var entry in e.Entries)
                {
                    superseded.Add(((Classification)entry.Entity).Id);
                    entry.State = EntityState.Detached;
                }
            }
        }
    }

    /// <summary>
    /// Any provider without a retrying execution strategy (SQLite): the rows are read, then the unfinished ones updated in
    /// one statement, both in one transaction. Microsoft.Data.Sqlite begins it IMMEDIATE, taking the write lock before the
    /// read, so no other claim or result commits between the two: without it two claims could read the same count (and
    /// neither's result save match it), and a row completed meanwhile was marked processing again.
    /// </summary>
    private static async Task<ClassificationClaim> ClaimByReadThenUpdateAsync(ClassifierDbContext db, IReadOnlyCollection<Guid> ids, string workerId,
        DateTime startedAt, int maxAttempts, CancellationToken cancellationToken)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var rows = await db.Classifications.Include(c => c.Image).Where(c => ids.Contains(c.Id)).ToListAsync(cancellationToken);
        var missing = ids.Except(rows.Select(r => r.Id)).ToList();
        var pending = rows.Where(r => !ClassificationStatus.IsFinal(r.Status)).ToList();
        if (pending.Count == 0) return new ClassificationClaim(pending, missing);
        var pendingIds = pending.Select(r => r.Id).ToList();
        var final = ClassificationStatus.Final;
        var gaveUp = TooManyAttemptsMessage(maxAttempts);
        DateTime? failedAt = startedAt;
        // Not final, as in PostgreSQL's statement: the lock makes it redundant, but a claim must never reopen a result.
        await db.Classifications.Where(c => pendingIds.Contains(c.Id) && !final.Contains(c.Status)).ExecuteUpdateAsync(set => set
            .SetProperty(c => c.Status, c => c.Attempts >= maxAttempts ? ClassificationStatus.Failed : ClassificationStatus.Processing)
            .SetProperty(c => c.ErrorCode, c => c.Attempts >= maxAttempts ? TooManyAttempts : c.ErrorCode)
            .SetProperty(c => c.Error, c => c.Attempts >= maxAttempts ? gaveUp : c.Error)
            .SetProperty(c => c.CompletedAt, c => c.Attempts >= maxAttempts ? failedAt : c.CompletedAt)
            .SetProperty(c => c.StartedAt, startedAt)
            .SetProperty(c => c.WorkerId, workerId)
            .SetProperty(c => c.Attempts, c => c.Attempts + 1), cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        foreach (var row in pending)
        {
            if (row.Attempts >= maxAttempts) (row.Status, row.ErrorCode, row.Error, row.CompletedAt) = (ClassificationStatus.Failed, TooManyAttempts, gaveUp, failedAt);
            else row.Status = ClassificationStatus.Processing;
            row.StartedAt = startedAt;
            row.WorkerId = workerId;
            row.Attempts++;
        }
        // The tracked rows now match the database.
        db.ChangeTracker.DetectChanges();
        db.ChangeTracker.AcceptAllChanges();
        return new ClassificationClaim(pending, missing);
    }

    /// <summary>
    /// PostgreSQL: one <c>UPDATE … FROM images … RETURNING</c> marks the rows and reads them back with their images, one
    /// round trip instead of two. At low load a batch is one image, so that is a round trip less on each image's path:
    /// at half saturation (bench/ab.sh, three pairs in turns) a lone image's claim took a median 1.3–2.6 ms against 2.8–3.6.
    /// </summary>
    private static async Task<ClassificationClaim> ClaimInOneStatementAsync(ClassifierDbContext db, IReadOnlyCollection<Guid> ids, string workerId,
        DateTime startedAt, int maxAttempts, CancellationToken cancellationToken)
    {
        var (sql, classificationColumns, imageColumns) = Statements.GetValue(db.Model, _ => ClaimStatement.For(db));

        var claimed = await db.Database.CreateExecutionStrategy().ExecuteAsync(async () =>
        {
            await db.Database.OpenConnectionAsync(cancellationToken);
            try
            {
                await using var command = new NpgsqlCommand(sql, (NpgsqlConnection)db.Database.GetDbConnection());
                command.Parameters.AddWithValue("processing", ClassificationStatus.Processing);
                command.Parameters.AddWithValue("started_at", startedAt);
                command.Parameters.AddWithValue("worker_id", workerId);
                command.Parameters.AddWithValue("ids", ids.ToArray());
                command.Parameters.AddWithValue("final", ClassificationStatus.Final.ToArray());
                command.Parameters.AddWithValue("max_attempts", maxAttempts);
                command.Parameters.AddWithValue("failed", ClassificationStatus.Failed);
                command.Parameters.AddWithValue("too_many_attempts", TooManyAttempts);
                command.Parameters.AddWithValue("too_many_attempts_error", TooManyAttemptsMessage(maxAttempts));
                var rows = new List<Classification>();
                var images = new Dictionary<Guid, StoredImage>();
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    var row = Materialize<Classification>(reader, classificationColumns, 0);
                    var image = Materialize<StoredImage>(reader, imageColumns, classificationColumns.Count);
                    // Rows of the same image share one instance: the context tracks one per key.
                    row.Image = images.TryGetValue(image.Id, out var known) ? known : images[image.Id] = image;
                    rows.Add(row);
                }
                return rows;
            }
            finally
            {
                await db.Database.CloseConnectionAsync();
            }
        });
        db.AttachRange(claimed);

        // Rare (a redelivery of finished rows, or a row deleted since): tell the missing rows from the finished ones.
        var notClaimed = ids.Except(claimed.Select(r => r.Id)).ToList();
        var missing = notClaimed.Count == 0
            ? []
            : notClaimed.Except(await db.Classifications.Where(c => notClaimed.Contains(c.Id)).Select(c => c.Id).ToListAsync(cancellationToken)).ToList();
        return new ClassificationClaim(claimed, missing);
    }

    // The claim's SQL and column lists, built once per EF Core model (one per process) rather than for every batch.
    private static readonly ConditionalWeakTable<IModel, ClaimStatement> Statements = new();

    /// <summary>The one-statement claim's SQL, and the entity properties its returned columns fill, in their order.</summary>
    private sealed record ClaimStatement(string Sql, IReadOnlyList<ReturnedColumn> ClassificationColumns, IReadOnlyList<ReturnedColumn> ImageColumns)
    {
        public static ClaimStatement For(ClassifierDbContext db)
        {
            var classificationType = db.Model.FindEntityType(typeof(Classification))!;
            var imageType = db.Model.FindEntityType(typeof(StoredImage))!;
            var classificationColumns = classificationType.GetProperties().ToList();
            var imageColumns = imageType.GetProperties().ToList();
            // Names as the model maps them, quoted as EF Core quotes them in its own SQL.
            var sqlHelper = db.GetService<ISqlGenerationHelper>();
            string Column(IEntityType type, string property) => sqlHelper.DelimitIdentifier(type.FindProperty(property)!.GetColumnName());
            string Own(string property) => Column(classificationType, property);
            // A row claimed max_attempts times already is failed instead, in the same statement (SET reads the row as it was).
            var givenUp = $"c.{Own(nameof(Classification.Attempts))} >= @max_attempts";
            var returning = string.Join(", ", classificationColumns.Select(p => $"c.{sqlHelper.DelimitIdentifier(p.GetColumnName())}")
                .Concat(imageColumns.Select(p => $"i.{sqlHelper.DelimitIdentifier(p.GetColumnName())}")));
            var sql = $"""
                UPDATE {sqlHelper.DelimitIdentifier(classificationType.GetTableName()!)} AS c
                SET {Own(nameof(Classification.Status))} = CASE WHEN {givenUp} THEN @failed ELSE @processing END,
                    {Own(nameof(Classification.ErrorCode))} = CASE WHEN {givenUp} THEN @too_many_attempts ELSE c.{Own(nameof(Classification.ErrorCode))} END,
                    {Own(nameof(Classification.Error))} = CASE WHEN {givenUp} THEN @too_many_attempts_error ELSE c.{Own(nameof(Classification.Error))} END,
                    {Own(nameof(Classification.CompletedAt))} = CASE WHEN {givenUp} THEN @started_at ELSE c.{Own(nameof(Classification.CompletedAt))} END,
                    {Column(classificationType, nameof(Classification.StartedAt))} = @started_at,
                    {Column(classificationType, nameof(Classification.WorkerId))} = @worker_id,
                    {Column(classificationType, nameof(Classification.Attempts))} = c.{Column(classificationType, nameof(Classification.Attempts))} + 1
                FROM {sqlHelper.DelimitIdentifier(imageType.GetTableName()!)} AS i
                WHERE i.{Column(imageType, nameof(StoredImage.Id))} = c.{Column(classificationType, nameof(Classification.ImageId))}
                  AND c.{Column(classificationType, nameof(Classification.Id))} = ANY(@ids)
                  AND c.{Column(classificationType, nameof(Classification.Status))} <> ALL(@final)
                RETURNING {returning}
                """;
            return new ClaimStatement(sql, classificationColumns.Select(ReturnedColumn.Of).ToList(), imageColumns.Select(ReturnedColumn.Of).ToList());
        }
    }

    /// <summary>A mapped property filled from a returned column, with EF Core's conversion from the column's value, if any.</summary>
    private sealed record ReturnedColumn(PropertyInfo Property, ValueConverter? Converter)
    {
        // Every mapped property is a CLR property here; a shadow property would need the change tracker to set it.
        public static ReturnedColumn Of(IProperty property) => new(
            property.PropertyInfo ?? throw new NotSupportedException($"{property.DeclaringType.DisplayName()}.{property.Name} is a shadow property"),
            property.GetTypeMapping().Converter);
    }

    /// <summary>
    /// An entity from its columns in the reader, starting at <paramref name="offset"/>, converted as EF Core would: every
    /// mapped property is set, so the tracked row holds what an EF Core query would have given.
    /// </summary>
    private static T Materialize<T>(DbDataReader reader, IReadOnlyList<ReturnedColumn> columns, int offset)
    {
        var entity = Activator.CreateInstance<T>();
        for (var k = 0; k < columns.Count; k++)
        {
            var value = reader.IsDBNull(offset + k) ? null : reader.GetValue(offset + k);
            if (value is not null && columns[k].Converter is { } converter) value = converter.ConvertFromProvider(value);
            columns[k].Property.SetValue(entity, value);
        }
        return entity;
    }
}
