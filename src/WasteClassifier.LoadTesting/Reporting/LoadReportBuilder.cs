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
            records.Count == 0 ? 0 : Math.Round(100.0 * failed / records.Count, 3), failures, result.ArrivalsDelayed, result.ArrivalsNotSent);

        var duration = options.Duration.TotalSeconds;
        // Over the time each kind of event went on: a run ended by its request bound sends for less than its duration.
        var lastAccept = counts.Accepted == 0 ? duration : Math.Min(duration, Math.Max(records.Max(r => r.AcceptedS ?? 0), 1e-3));
        var lastFinish = completed.Count == 0 ? duration : Math.Max(completed.Max(r => r.FinishedS!.Value), 1e-3);
        var steadyFrom = Math.Min(options.Ramp.TotalSeconds, duration / 2);
        var steady = SteadyRate(completed.Select(r => r.FinishedS!.Value).Where(f => f >= steadyFrom && f <= duration).ToList(), duration - steadyFrom);
        var throughput = new ThroughputFigures(Round(counts.Accepted / lastAccept), Round(completed.Count / lastFinish), Round(steady));

        var latency = new LatencyFigures(
            Summary(records.Select(r => r.SubmitMs)),
            Summary(completed.Select(r => r.Server?.QueueMs)),
            Summary(completed.Select(r => r.Server?.InferenceMs)),
            Summary(completed.Select(r => r.Server?.TotalMs)),
            Summary(completed.Select(r => r.ClientMs)));

        var run = new RunInfo(options.Queue ? "queue" : "http", result.Target, options.Profile, options.ClosedLoop ? options.Users : 0,
            options.ClosedLoop ? 0 : options.Rate, duration, options.Ramp.TotalSeconds, options.Drain.TotalSeconds, options.Source, result.StartedAt,
            Round(result.Elapsed.TotalSeconds), options.StampsUploads, result.Interrupted);
        return new LoadReport(run, counts, throughput, latency, Timeline(records), Histogram(completed.Select(r => r.Server?.TotalMs).OfType<double>().ToList()));
    }

    /// <summary>
    /// Completions per second in the steady window: the slope of a least-squares line through (finish time, completions so
    /// far). Results arrive a batch at a time (16 at once at saturation), so a plain count in the window moves in steps of a
    /// whole batch, depending on where the window's edges fall between batches: 16 / 27 s = 0.59 images/s (1.4 %) in the
    /// benchmark, where four phases in two runs all counted exactly 70 batches. The slope measures the rate between
    /// batches (for evenly spaced batches of equal size it is exactly their size over their spacing). Fewer than two
    /// distinct finish times fall back to the count over the window.
    /// </summary>
    internal static double SteadyRate(IReadOnlyList<double> finishTimes, double windowSeconds)
    {
        var fallback = finishTimes.Count / Math.Max(1e-3, windowSeconds);
        if (finishTimes.Count < 2) return fallback;
        var times = finishTimes.Order().ToList();
        var meanTime = times.Average();
        var meanCount = (times.Count + 1) / 2.0; // the k-th completion (1-based) has k completed so far
        double covariance = 0, variance = 0;
        for (var k = 0; k < times.Count; k++)
        {
            var dt = times[k] - meanTime;
            covariance += dt * (k + 1 - meanCount);
            variance += dt * dt;
        }
        return variance < 1e-12 ? fallback : covariance / variance;
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
            points.Add(new TimelinePoint(s, Round(Math.Min(1, seconds - s)), records.Count(r => r.AcceptedS is { } a && (int)a == s),
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
