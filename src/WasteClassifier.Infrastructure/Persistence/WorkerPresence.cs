using System.Data;
using System.Data.Common;
using Microsoft.EntityFrameworkCore;

namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>
/// Worker heartbeats (<see cref="WorkerHeartbeat"/>): the beat, the graceful stop and the sweep, all timed by the database's
/// clock (one clock for every worker and API replica), and what a row's times say about its worker.
/// </summary>
public static class WorkerPresence
{
    /// <summary>A beat within <see cref="MissedBeats"/> of its worker's intervals.</summary>
    public const string Up = "up";

    /// <summary>No beat for longer: the process died, hangs, or cannot reach the database.</summary>
    public const string Missing = "missing";

    /// <summary>The process said it stopped (a graceful shutdown: scaled in, rolled out).</summary>
    public const string Stopped = "stopped";

    /// <summary>Beats a worker may miss before it is missing: one late beat (a slow database, a GC pause) is not an outage.</summary>
    public const int MissedBeats = 3;

    /// <summary>What <paramref name="row"/> says at <paramref name="now"/> (the database's clock, as its times are).</summary>
    public static string StatusOf(WorkerHeartbeat row, DateTime now) =>
        row.StoppedAt is not null ? Stopped
        : now - row.LastSeenAt <= TimeSpan.FromSeconds((double)MissedBeats * row.HeartbeatSeconds) ? Up
        : Missing;

    /// <summary>
    /// Records a beat: one upsert, its last_seen_at the database's now. A beat after a stop (the same id started again)
    /// clears the stop.
    /// </summary>
    public static Task<int> BeatAsync(ClassifierDbContext db, WorkerHeartbeat worker, CancellationToken cancellationToken)
    {
        // Now(db) is SQL of this class's own; the values go as parameters.
        var statement = $$"""
            INSERT INTO worker_heartbeats (worker_id, host_name, process_started_at, model_version, heartbeat_seconds, last_seen_at, stopped_at)
            VALUES ({0}, {1}, {2}, {3}, {4}, {{Now(db)}}, NULL)
            ON CONFLICT (worker_id) DO UPDATE SET host_name = excluded.host_name, process_started_at = excluded.process_started_at,
                model_version = excluded.model_version, heartbeat_seconds = excluded.heartbeat_seconds,
                last_seen_at = excluded.last_seen_at, stopped_at = NULL
            """;
        return db.Database.ExecuteSqlRawAsync(statement,
            [worker.WorkerId, worker.HostName, DateTime.SpecifyKind(worker.ProcessStartedAt, DateTimeKind.Utc), Text(db, worker.ModelVersion),
                worker.HeartbeatSeconds], cancellationToken);
    }

    /// <summary>Marks <paramref name="workerId"/> stopped, at the database's now.</summary>
    public static Task<int> StopAsync(ClassifierDbContext db, string workerId, CancellationToken cancellationToken)
    {
        var statement = $"UPDATE worker_heartbeats SET stopped_at = {Now(db)}, last_seen_at = {Now(db)} WHERE worker_id = {{0}}";
        return db.Database.ExecuteSqlRawAsync(statement, [workerId], cancellationToken);
    }

    /// <summary>Deletes the rows of workers not seen for <paramref name="retention"/>; returns how many.</summary>
    public static async Task<int> SweepAsync(ClassifierDbContext db, TimeSpan retention, CancellationToken cancellationToken)
    {
        var before = await DatabaseNowAsync(db, cancellationToken) - retention;
        return await db.WorkerHeartbeats.Where(w => w.LastSeenAt < before).ExecuteDeleteAsync(cancellationToken);
    }

    /// <summary>The database's clock, UTC, to judge rows whose times it wrote.</summary>
    public static async Task<DateTime> DatabaseNowAsync(ClassifierDbContext db, CancellationToken cancellationToken)
    {
        var query = $"SELECT {Now(db)} AS \"Value\"";
        var now = await db.Database.SqlQueryRaw<DateTime>(query).SingleAsync(cancellationToken);
        return DateTime.SpecifyKind(now, DateTimeKind.Utc);
    }

    /// <summary>A string parameter that may be null: EF Core maps a raw SQL value by its type, and DBNull has no mapping.</summary>
    private static DbParameter Text(ClassifierDbContext db, string? value)
    {
        using var command = db.Database.GetDbConnection().CreateCommand();
        var parameter = command.CreateParameter();
        parameter.DbType = DbType.String;
        parameter.Value = (object?)value ?? DBNull.Value;
        return parameter;
    }

    // SQLite keeps times as text in EF Core's format, which compares in time order; strftime('%f') gives milliseconds.
    private static string Now(ClassifierDbContext db) => db.Database.IsNpgsql() ? "now()" : "strftime('%Y-%m-%d %H:%M:%f', 'now')";
}
