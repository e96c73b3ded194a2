using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Apis;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Stats;

/// <summary>
/// Service-wide statistics computed from the database, so they cover every worker and survive restarts.
/// PostgreSQL computes percentiles itself; the embedded SQLite database is small enough to sort in memory.
/// </summary>
public sealed class StatsService(ClassifierDbContext db, TimeProvider clock)
{
    private static readonly string[] LatencyColumns = ["queue_ms", "inference_ms", "total_ms"];

    public async Task<ServiceStats> GetAsync(CancellationToken cancellationToken)
    {
        var counts = await db.Classifications.GroupBy(c => c.Status).Select(g => new { g.Key, Count = g.LongCount() }).ToDictionaryAsync(g => g.Key, g => g.Count, cancellationToken);
        var byStatus = ClassificationStatus.All.ToDictionary(s => s, s => counts.GetValueOrDefault(s));

        var latency = await SummarizeLatencyAsync(cancellationToken);

        var now = clock.GetUtcNow().UtcDateTime;
        var minuteAgo = now.AddMinutes(-1);
        var lastMinute = await db.Classifications.LongCountAsync(c => c.Status == ClassificationStatus.Completed && c.CompletedAt >= minuteAgo, cancellationToken);

        var perModel = await db.Classifications.Where(c => c.Status == ClassificationStatus.Completed && c.ModelVersion != null)
            .GroupBy(c => c.ModelVersion!)
            .Select(g => new ModelStats(g.Key, g.LongCount(), g.Average(c => c.InferenceMs), g.Average(c => c.TotalMs), g.Max(c => c.CompletedAt)))
            .ToListAsync(cancellationToken);
        var perWorker = await db.Classifications.Where(c => c.WorkerId != null && (c.Status == ClassificationStatus.Completed || c.Status == ClassificationStatus.Failed))
            .GroupBy(c => c.WorkerId!)
            .Select(g => new WorkerStats(g.Key, g.LongCount(c => c.Status == ClassificationStatus.Completed), g.LongCount(c => c.Status == ClassificationStatus.Failed),
                g.Average(c => (double?)c.BatchSize), g.Average(c => c.InferenceMs), g.Max(c => c.CompletedAt)))
            .ToListAsync(cancellationToken);
        var classes = await db.Classifications.Where(c => c.Status == ClassificationStatus.Completed && c.PredictedClass != null)
            .GroupBy(c => c.PredictedClass!).Select(g => new { g.Key, Count = g.LongCount() })
            .ToDictionaryAsync(g => g.Key, g => g.Count, cancellationToken);

        // What each camera or line sees: completed results per source and class. Images sent without a source have a field
        // of their own: under a name in the map ("unspecified") they collided with a real source of that name (a 500).
        var bySource = await db.Classifications.Where(c => c.Status == ClassificationStatus.Completed && c.PredictedClass != null)
            .GroupBy(c => new { c.Source, c.PredictedClass }).Select(g => new { g.Key.Source, g.Key.PredictedClass, Count = g.LongCount() })
            .ToListAsync(cancellationToken);
        var classesBySource = bySource.Where(r => r.Source is not null).GroupBy(r => r.Source!)
            .ToDictionary(g => g.Key, g => (IReadOnlyDictionary<string, long>)g.ToDictionary(r => r.PredictedClass!, r => r.Count));
        var classesWithoutSource = bySource.Where(r => r.Source is null).ToDictionary(r => r.PredictedClass!, r => r.Count);

        return new ServiceStats(
            TotalPredictions: byStatus[ClassificationStatus.Completed],
            Counts: byStatus,
            LatencyMs: latency,
            Throughput: new ThroughputStats(lastMinute, Math.Round(lastMinute / 60.0, 3)),
            PerModelVersion: perModel.Select(m => m with { MeanInferenceMs = Round(m.MeanInferenceMs), MeanTotalMs = Round(m.MeanTotalMs), LastCompletedAt = Utc(m.LastCompletedAt) }).ToList(),
            PerWorker: perWorker.Select(w => w with { MeanBatchSize = Round(w.MeanBatchSize), MeanInferenceMs = Round(w.MeanInferenceMs), LastCompletedAt = Utc(w.LastCompletedAt) }).ToList(),
            ClassDistribution: classes,
            ClassDistributionBySource: classesBySource,
            ClassDistributionWithoutSource: classesWithoutSource,
            GeneratedAt: ClassificationView.Utc(now));
    }

    /// <summary>Each latency column's distribution, keyed without its "_ms".</summary>
    private async Task<Dictionary<string, LatencySummary>> SummarizeLatencyAsync(CancellationToken cancellationToken)
    {
        var connection = db.Database.GetDbConnection();
        await db.Database.OpenConnectionAsync(cancellationToken);
        try
        {
            var latency = new Dictionary<string, LatencySummary>();
            await using var command = connection.CreateCommand();
            if (db.Database.IsNpgsql())
            {
                // One scan of the table for all three columns, not one each: the aggregates skip each column's NULLs.
                command.CommandText = "SELECT " + string.Join(", ", LatencyColumns.Select(c =>
                    $"count({c}), min({c}), avg({c}), percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY {c}), max({c})")) +
                    " FROM classifications WHERE status = 'completed'";
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                await reader.ReadAsync(cancellationToken);
                for (var i = 0; i < LatencyColumns.Length; i++)
                {
                    var at = i * 5;
                    var count = reader.GetInt64(at);
                    var percentiles = count == 0 ? null : reader.GetFieldValue<double?[]>(at + 3);
                    latency[Name(LatencyColumns[i])] = count == 0 ? LatencySummary.Empty
                        : new LatencySummary(count, Read(reader, at + 1), Read(reader, at + 2), Round(percentiles![0]), Round(percentiles[1]), Round(percentiles[2]), Read(reader, at + 4));
                }
                return latency;
            }
            foreach (var column in LatencyColumns)
            {
                command.CommandText = $"SELECT {column} FROM classifications WHERE status = 'completed' AND {column} IS NOT NULL ORDER BY {column}";
                var values = new List<double>();
                await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
                    while (await reader.ReadAsync(cancellationToken)) values.Add(reader.GetDouble(0));
                latency[Name(column)] = LatencySummary.FromSorted(values);
            }
            return latency;
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }

        static string Name(string column) => column.Replace("_ms", "");
    }

    private static double? Read(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : LatencySummary.Round(Convert.ToDouble(reader.GetValue(ordinal)));

    private static double? Round(double? value) => value is { } v ? LatencySummary.Round(v) : null;

    private static DateTime? Utc(DateTime? value) => value is { } v ? DateTime.SpecifyKind(v, DateTimeKind.Utc) : null;
}

public sealed record ServiceStats(
    long TotalPredictions,
    IReadOnlyDictionary<string, long> Counts,
    IReadOnlyDictionary<string, LatencySummary> LatencyMs,
    ThroughputStats Throughput,
    IReadOnlyList<ModelStats> PerModelVersion,
    IReadOnlyList<WorkerStats> PerWorker,
    IReadOnlyDictionary<string, long> ClassDistribution,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> ClassDistributionBySource,
    IReadOnlyDictionary<string, long> ClassDistributionWithoutSource,
    DateTimeOffset GeneratedAt);

public sealed record ThroughputStats(long CompletedLastMinute, double ImagesPerSecondLastMinute);

public sealed record ModelStats(string ModelVersion, long Completed, double? MeanInferenceMs, double? MeanTotalMs, DateTime? LastCompletedAt);

public sealed record WorkerStats(string WorkerId, long Completed, long Failed, double? MeanBatchSize, double? MeanInferenceMs, DateTime? LastCompletedAt);
