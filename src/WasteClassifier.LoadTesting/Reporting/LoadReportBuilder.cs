using WasteClassifier.Api.Stats;

namespace WasteClassifier.LoadTesting.Reporting;

internal static class LoadReportBuilder
{
    private const int HistogramBins = 24;

    public static LoadReport Build(LoadRunResult result)
    {
        var options = result.Options;
        var records = result.Records;
        var completed = records.Where(r => r.Outcome == RequestOutcome.Completed).ToList();
        var failures = records.Where(r => r.Outcome != RequestOutcome.Completed)
            .GroupBy(r => r.Reason ?? "unknown").OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Count());
        var failed = records.Count - completed.Count;
        var counts = new RequestCounts(records.Count, records.Count(r => r.AcceptedS is not null), completed.Count, failed,
            records.Count(r => r.Outcome == RequestOutcome.Unfinished), records.Sum(r => r.Throttled),
            records.Count == 0 ? 0 : Math.Round(100.0 * failed / records.Count, 3), failures);

        var duration = options.Duration.TotalSeconds;
        var lastFinish = completed.Count == 0 ? duration : Math.Max(completed.Max(r => r.FinishedS!.Value), 1e-3);
        var steadyFrom = Math.Min(options.Ramp.TotalSeconds, duration / 2);
        var steady = completed.Count(r => r.FinishedS >= steadyFrom && r.FinishedS <= duration) / Math.Max(1e-3, duration - steadyFrom);
        var throughput = new ThroughputFigures(Round(counts.Accepted / duration), Round(completed.Count / lastFinish), Round(steady));

        var latency = new LatencyFigures(
            Summary(records.Select(r => r.SubmitMs)),
            Summary(completed.Select(r => r.Server?.QueueMs)),
            Summary(completed.Select(r => r.Server?.InferenceMs)),
            Summary(completed.Select(r => r.Server?.TotalMs)),
            Summary(completed.Select(r => r.ClientMs)));

        var run = new RunInfo(options.Queue ? "queue" : "http", result.Target, options.Profile, options.ClosedLoop ? options.Users : 0,
            options.ClosedLoop ? 0 : options.Rate, duration, options.Ramp.TotalSeconds, options.Drain.TotalSeconds, options.Source, result.StartedAt,
            Round(result.Elapsed.TotalSeconds), options.StampsUploads);
        return new LoadReport(run, counts, throughput, latency, Timeline(records), Histogram(completed.Select(r => r.Server?.TotalMs).OfType<double>().ToList()));
    }

    public static LatencySummary Summary(IEnumerable<double?> values) =>
        LatencySummary.FromSorted(values.OfType<double>().Order().ToList());

    private static List<TimelinePoint> Timeline(IReadOnlyList<RequestRecord> records)
    {
        var seconds = records.Select(r => Math.Max(r.AcceptedS ?? 0, r.FinishedS ?? 0)).DefaultIfEmpty(0).Max();
        var points = new List<TimelinePoint>();
        for (var s = 0; s <= (int)seconds; s++)
        {
            var finished = records.Where(r => r.FinishedS is { } f && (int)f == s).ToList();
            var e2e = finished.Where(r => r.Outcome == RequestOutcome.Completed).Select(r => r.Server?.TotalMs).OfType<double>().Order().ToList();
            points.Add(new TimelinePoint(s, records.Count(r => r.AcceptedS is { } a && (int)a == s),
                finished.Count(r => r.Outcome == RequestOutcome.Completed), finished.Count(r => r.Outcome == RequestOutcome.Failed),
                e2e.Count == 0 ? null : LatencySummary.Percentile(e2e, 0.50), e2e.Count == 0 ? null : LatencySummary.Percentile(e2e, 0.95)));
        }
        return points;
    }

    private static List<HistogramBin> Histogram(List<double> values)
    {
        if (values.Count == 0) return [];
        var max = values.Max();
        var width = Math.Max(1, Math.Ceiling(max / HistogramBins));
        var counts = new int[HistogramBins];
        foreach (var v in values) counts[Math.Min(HistogramBins - 1, (int)(v / width))]++;
        return counts.Select((c, i) => new HistogramBin(i * width, (i + 1) * width, c)).ToList();
    }

    private static double Round(double value) => Math.Round(value, 3);
}
