using System.Data.Common;
using System.Globalization;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Apis;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Stats;

/// <summary>
/// The dashboard's charts: per time step, completions and failures, throughput, queue depth at the step's end and
/// end-to-end latency percentiles, overall and per worker and model version. The database counts by step (a facility
/// finishes tens of images a second, millions a day: no window's rows are read into memory to count them). On
/// PostgreSQL the percentiles are computed there too; SQLite (the embedded default, one process) streams the window's
/// latencies, ordered, and they are read off per step.
/// </summary>
public sealed class TimeSeriesService(ClassifierDbContext db, TimeProvider clock)
{
    public async Task<TimeSeries> GetAsync(int minutes, int stepSeconds, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var step = TimeSpan.FromSeconds(stepSeconds);
        // Align steps to the clock so points stay put between refreshes.
        var end = new DateTime(now.Ticks - now.Ticks % step.Ticks + step.Ticks, DateTimeKind.Utc);
        var count = (int)Math.Ceiling(TimeSpan.FromMinutes(minutes) / step);
        var from = end - step * count;
        var window = new Window(from, end, stepSeconds, count, db.Database.IsNpgsql());

        var connection = db.Database.GetDbConnection();
        await db.Database.OpenConnectionAsync(cancellationToken);
        try
        {
            // Finished rows by step, status, worker and model version.
            var finished = await window.QueryAsync(connection,
                $"SELECT {window.Step("completed_at")}, status, worker_id, model_version, count(*) FROM classifications " +
                "WHERE completed_at >= @from AND completed_at < @end GROUP BY 1, 2, 3, 4",
                r => (Step: r.GetInt32(0), Status: r.GetString(1), Worker: r.IsDBNull(2) ? null : r.GetString(2),
                    Version: r.IsDBNull(3) ? null : r.GetString(3), Count: r.GetInt64(4)), cancellationToken);

            // Queue depth at a step's end: waiting when the window began, plus arrivals, less starts (a row never
            // started but finished, e.g. refused, "starts" when it finishes). Only rows unfinished now or finished in the
            // window can have waited or started in it: that filter is what the status and completed_at indexes serve,
            // so a refresh never scans the table's whole history.
            const string Started = "coalesce(started_at, completed_at)";
            const string LiveInWindow = "(status IN ('queued', 'processing') OR completed_at >= @from)";
            var waitingAtStart = (await window.QueryAsync(connection,
                $"SELECT count(*) FROM classifications WHERE {LiveInWindow} AND created_at < @from AND ({Started} IS NULL OR {Started} >= @from)",
                r => r.GetInt64(0), cancellationToken)).Single();
            var arrivals = await window.CountByStepAsync(connection, "created_at", "1 = 1", cancellationToken);
            var starts = await window.CountByStepAsync(connection, Started, LiveInWindow, cancellationToken);

            var latencies = await window.LatencyPercentilesAsync(connection, cancellationToken);

            var points = new List<TimePoint>(count);
            var queued = waitingAtStart;
            for (var i = 0; i < count; i++)
            {
                var t = from + step * i;
                var inStep = finished.Where(f => f.Step == i).ToList();
                var completed = inStep.Where(f => f.Status == ClassificationStatus.Completed).Sum(f => f.Count);
                queued += arrivals.GetValueOrDefault(i) - starts.GetValueOrDefault(i);
                // The current step is not over: its rate is over the part that has passed.
                var seconds = Math.Max(1, Math.Min(step.TotalSeconds, (now - t).TotalSeconds));
                var (p50, p95, p99) = latencies.GetValueOrDefault(i);
                points.Add(new TimePoint(ClassificationView.Utc(t), completed, inStep.Sum(f => f.Count) - completed,
                    Math.Round(completed / seconds, 3), Math.Max(0, queued), p50, p95, p99));
            }

            return new TimeSeries(ClassificationView.Utc(from), ClassificationView.Utc(end), stepSeconds, points,
                Series(finished.Select(f => (f.Step, f.Status, Key: f.Worker, f.Count)), count),
                Series(finished.Select(f => (f.Step, f.Status, Key: f.Version, f.Count)), count));
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }
    }

    /// <summary>Completed images per step for each value of the key (a worker or a model version).</summary>
    private static IReadOnlyDictionary<string, IReadOnlyList<long>> Series(IEnumerable<(int Step, string Status, string? Key, long Count)> finished, int count) =>
        finished.Where(f => f.Status == ClassificationStatus.Completed && f.Key is not null).GroupBy(f => f.Key!)
            .ToDictionary(g => g.Key, g =>
            {
                var values = new long[count];
                foreach (var f in g) values[f.Step] += f.Count;
                return (IReadOnlyList<long>)values;
            });

    /// <summary>The window's bounds and steps, and the SQL that puts a time into its step on each provider.</summary>
    private sealed record Window(DateTime From, DateTime End, int StepSeconds, int Count, bool Postgres)
    {
        /// <summary>The step index of <paramref name="column"/>, clamped to the window (SQLite's julianday is a double).</summary>
        public string Step(string column)
        {
            var raw = Postgres
                ? $"floor(extract(epoch from ({column} - @from)) / @step)::int"
                : $"CAST((julianday({column}) - julianday(@from)) * 86400.0 / @step AS INTEGER)";
            return Postgres ? $"greatest(0, least({Count - 1}, {raw}))" : $"max(0, min({Count - 1}, {raw}))";
        }

        public async Task<List<T>> QueryAsync<T>(DbConnection connection, string sql, Func<DbDataReader, T> read, CancellationToken cancellationToken)
        {
            await using var command = Command(connection, sql);
            var rows = new List<T>();
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken)) rows.Add(read(reader));
            return rows;
        }

        public async Task<Dictionary<int, long>> CountByStepAsync(DbConnection connection, string column, string filter, CancellationToken cancellationToken) =>
            (await QueryAsync(connection, $"SELECT {Step(column)}, count(*) FROM classifications WHERE {filter} AND {column} >= @from AND {column} < @end GROUP BY 1",
                r => (Step: r.GetInt32(0), Count: r.GetInt64(1)), cancellationToken)).ToDictionary(r => r.Step, r => r.Count);

        public async Task<Dictionary<int, (double? P50, double? P95, double? P99)>> LatencyPercentilesAsync(DbConnection connection, CancellationToken cancellationToken)
        {
            const string Completed = "status = 'completed' AND total_ms IS NOT NULL AND completed_at >= @from AND completed_at < @end";
            if (Postgres)
            {
                var rows = await QueryAsync(connection,
                    $"SELECT {Step("completed_at")}, percentile_cont(0.5) WITHIN GROUP (ORDER BY total_ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY total_ms), " +
                    $"percentile_cont(0.99) WITHIN GROUP (ORDER BY total_ms) FROM classifications WHERE {Completed} GROUP BY 1",
                    r => (Step: r.GetInt32(0), P50: r.GetDouble(1), P95: r.GetDouble(2), P99: r.GetDouble(3)), cancellationToken);
                return rows.ToDictionary(r => r.Step, r => ((double?)r.P50, (double?)r.P95, (double?)r.P99));
            }
            var result = new Dictionary<int, (double?, double?, double?)>();
            var current = -1;
            var values = new List<double>();
            void Flush()
            {
                if (values.Count > 0)
                    result[current] = (LatencySummary.Percentile(values, 0.50), LatencySummary.Percentile(values, 0.95), LatencySummary.Percentile(values, 0.99));
                values.Clear();
            }
            await using var command = Command(connection, $"SELECT {Step("completed_at")} AS step, total_ms FROM classifications WHERE {Completed} ORDER BY step, total_ms");
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var step = reader.GetInt32(0);
                if (step != current) Flush();
                current = step;
                values.Add(reader.GetDouble(1));
            }
            Flush();
            return result;
        }

        /// <summary>A command over the window: @from, @end and @step (seconds) bound.</summary>
        private DbCommand Command(DbConnection connection, string sql)
        {
            var command = connection.CreateCommand();
            command.CommandText = sql;
            Add(command, "from", From);
            Add(command, "end", End);
            Add(command, "step", (double)StepSeconds);
            return command;
        }

        private void Add(DbCommand command, string name, object value)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            // SQLite keeps times as text in EF Core's format, and compares them as text.
            parameter.Value = !Postgres && value is DateTime time ? time.ToString("yyyy-MM-dd HH:mm:ss.FFFFFFF", CultureInfo.InvariantCulture) : value;
            command.Parameters.Add(parameter);
        }
    }
}

public sealed record TimeSeries(DateTimeOffset From, DateTimeOffset To, int StepSeconds, IReadOnlyList<TimePoint> Points,
    IReadOnlyDictionary<string, IReadOnlyList<long>> CompletedPerWorker, IReadOnlyDictionary<string, IReadOnlyList<long>> CompletedPerModelVersion);

public sealed record TimePoint(DateTimeOffset T, long Completed, long Failed, double ImagesPerSecond, long QueueDepth,
    double? P50Ms, double? P95Ms, double? P99Ms);
