using Microsoft.EntityFrameworkCore;

namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>
/// Cluster-wide locks for the decisions that read some rows and write others, which READ COMMITTED alone lets two
/// processes make at once (two trainers each seeing no other job running; two promotions each retiring the same old
/// model). On PostgreSQL a transaction-scoped advisory lock serialises them; SQLite already runs one writer at a
/// time, and a write transaction always reads the latest data.
/// </summary>
public static class ClusterLocks
{
    public const long TrainingJobClaims = 0x5743_0001;
    public const long ModelPromotions = 0x5743_0002;

    /// <summary>Held for a whole migration, on a session of its own (see <see cref="DatabaseExtensions.MigrateDatabaseAsync"/>).</summary>
    public const long Migrations = 0x5743_0003;

    /// <summary>Waits for <paramref name="key"/> until the current transaction ends. Call inside a transaction.</summary>
    public static async Task TakeAsync(ClassifierDbContext db, long key, CancellationToken cancellationToken)
    {
        if (db.Database.CurrentTransaction is null) throw new InvalidOperationException("a cluster lock is held until its transaction ends: begin one first");
        if (db.Database.IsNpgsql()) await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({key})", cancellationToken);
    }
}
