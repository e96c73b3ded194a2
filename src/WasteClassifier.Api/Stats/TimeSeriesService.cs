using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Apis;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Stats;

/// <summary>
/// The dashboard's charts: per time step, completions and failures, throughput, queue depth at the step's end and
/// end-to-end latency percentiles, overall and per worker and model version. Reads the window's rows (capped) and
/// buckets them in memory, which serves SQLite and PostgreSQL alike.
/// </summary>
public sealed class TimeSeriesService(ClassifierDbContext db, TimeProvider clock)
{
    public const int MaxRows = 50_000;

    public async Task<TimeSeries> GetAsync(int minutes, int stepSeconds, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var step = TimeSpan.FromSeconds(stepSeconds);
        // Align steps to the clock so points stay put between refreshes.
        var end = new DateTime(now.Ticks - now.Ticks % step.Ticks + step.Ticks, DateTimeKind.Utc);
        var count = (int)Math.Ceiling(TimeSpan.FromMinutes(minutes) / step);
        var from = end - step * count;

        // Rows finished in the window, plus rows still waiting (they make up the queue depth).
        var rows = await db.Classifications.AsNoTracking()
            .Where(c => c.CreatedAt >= from || c.CompletedAt >= from || c.CompletedAt == null)
            .OrderByDescending(c => c.CreatedAt).Take(MaxRows)
            .Select(c => new Row(c.Status, c.CreatedAt, c.StartedAt, c.CompletedAt, c.TotalMs, c.WorkerId, c.ModelVersion))
            .ToListAsync(cancellationToken);

        var starts = Enumerable.Range(0, count).Select(i => from + step * i).ToList();
        int Bucket(DateTime t) => (int)((t - from) / step);
        var finished = rows.Where(r => r.CompletedAt is { } c && c >= from && c < end).ToList();
        var byBucket = finished.GroupBy(r => Bucket(r.CompletedAt!.Value)).ToDictionary(g => g.Key, g => g.ToList());

        var points = starts.Select((t, i) =>
        {
            var inBucket = byBucket.GetValueOrDefault(i) ?? [];
            var completed = inBucket.Where(r => r.Status == ClassificationStatus.Completed).ToList();
            var bucketEnd = t + step;
            var queued = rows.LongCount(r => r.CreatedAt < bucketEnd && (r.StartedAt ?? r.CompletedAt ?? DateTime.MaxValue) >= bucketEnd);
            var latencies = completed.Where(r => r.TotalMs is not null).Select(r => r.TotalMs!.Value).Order().ToList();
            return new TimePoint(ClassificationView.Utc(t), completed.Count, inBucket.Count - completed.Count,
                Math.Round(completed.Count / step.TotalSeconds, 3), queued,
                latencies.Count == 0 ? null : LatencySummary.Percentile(latencies, 0.50),
                latencies.Count == 0 ? null : LatencySummary.Percentile(latencies, 0.95),
                latencies.Count == 0 ? null : LatencySummary.Percentile(latencies, 0.99));
        }).ToList();

        return new TimeSeries(ClassificationView.Utc(from), ClassificationView.Utc(end), stepSeconds, points,
            Series(finished, r => r.WorkerId, starts.Count, Bucket), Series(finished, r => r.ModelVersion, starts.Count, Bucket),
            rows.Count == MaxRows);
    }

    /// <summary>Completed images per step for each value of <paramref name="key"/> (a worker or a model version).</summary>
    private static IReadOnlyDictionary<string, IReadOnlyList<long>> Series(List<Row> finished, Func<Row, string?> key, int count, Func<DateTime, int> bucket) =>
        finished.Where(r => r.Status == ClassificationStatus.Completed && key(r) is not null).GroupBy(r => key(r)!)
            .ToDictionary(g => g.Key, g =>
            {
                var values = new long[count];
                foreach (var r in g) values[bucket(r.CompletedAt!.Value)]++;
                return (IReadOnlyList<long>)values;
            });

    private sealed record Row(string Status, DateTime CreatedAt, DateTime? StartedAt, DateTime? CompletedAt, double? TotalMs, string? WorkerId, string? ModelVersion);
}

public sealed record TimeSeries(DateTimeOffset From, DateTimeOffset To, int StepSeconds, IReadOnlyList<TimePoint> Points,
    IReadOnlyDictionary<string, IReadOnlyList<long>> CompletedPerWorker, IReadOnlyDictionary<string, IReadOnlyList<long>> CompletedPerModelVersion,
    bool Truncated);

public sealed record TimePoint(DateTimeOffset T, long Completed, long Failed, double ImagesPerSecond, long QueueDepth,
    double? P50Ms, double? P95Ms, double? P99Ms);
