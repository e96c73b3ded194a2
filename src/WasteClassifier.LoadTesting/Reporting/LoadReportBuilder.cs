using WasteClassifier.Api.Stats;

namespace WasteClassifier.LoadTesting.Reporting;

internal static class LoadReportBuilder
{
    private const int HistogramBins = 24;

    public static LoadReport Build(LoadRunResult result)
    {
        var options = result.Options;
        var records = result.Records;
        // A submission throttled when submissions stopped was never accepted, and nothing failed: it is counted apart, as
        // open-loop arrivals not sent are, not as submitted or failed.
        var sent = records.Where(r => r.Outcome != RequestOutcome.ThrottledAtEnd).ToList();
        var completed = records.Where(r => r.Outcome == RequestOutcome.Completed).ToList();
        // Open at an interrupt is no failure: counted apart, as throttled_at_end is.
        var outstanding = sent.Count(r => r.Outcome == RequestOutcome.OutstandingAtInterrupt);
        var failures = sent.Where(r => r.Outcome is not (RequestOutcome.Completed or RequestOutcome.OutstandingAtInterrupt))
            .GroupBy(r => r.Reason ?? "unknown").OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Count());
        var failed = sent.Count - completed.Count - outstanding;
        var counts = new RequestCounts(sent.Count, records.Count(r => r.AcceptedS is not null), completed.Count, failed,
            records.Count(r => r.Outcome == RequestOutcome.Unfinished), records.Sum(r => r.Throttled),
            sent.Count == 0 ? 0 : Math.Round(100.0 * failed / sent.Count, 3), failures, result.ArrivalsDelayed, result.ArrivalsNotSent,
            records.Count - sent.Count, outstanding);

        var duration = options.Duration.TotalSeconds;
        // Over the time each kind of event went on: a run ended by its request bound sends for less than its duration.
        var lastAccept = counts.Accepted == 0 ? duration : Math.Min(duration, Math.Max(records.Max(r => r.AcceptedS ?? 0), 1e-3));
        // Completions over the later of the last one and the time sending stopped: dividing by the last completion alone
        // made a stall at 10 s of a 30 s open-loop run look three times as fast as it was. Sending stopped at the duration
        // (sooner when interrupted), or at the last launch when the request bound ended the run.
        var boundReached = records.Count > 0 && records.Count >= options.MaxRequests;
        var refused = result.RefusedEverything is not null;
        var stoppedBy = refused ? StopReasons.Refused : boundReached ? StopReasons.RequestBound : result.Interrupted && result.Elapsed.TotalSeconds < duration ? StopReasons.Interrupted : StopReasons.Duration;
        // A run stopped by its duration sent for all of it, even if its clock read a hair less.
        var sendingStopped = boundReached || refused ? records.Max(r => r.StartedS)
            : stoppedBy == StopReasons.Duration ? duration
            : Math.Min(duration, result.Elapsed.TotalSeconds);
        var lastFinish = completed.Count == 0 ? duration : completed.Max(r => r.FinishedS!.Value);
        var completedOver = Math.Max(Math.Max(lastFinish, sendingStopped), 1e-3);
        // The steady window ends when sending did: a run ended by its request bound, Ctrl+C or SIGTERM at 10 s of 30 would
        // otherwise count 20 s of nothing (40/s read as 10/s).
        var steadyTo = Math.Min(duration, sendingStopped);
        // Between the ramp and the time sending stopped; a run that stopped within its ramp never reached its load (a rate
        // ramped over 10 s and stopped at 10.07 s by its request bound reported "steady 7.59/s").
        var steadyFrom = options.Ramp.TotalSeconds;
        var stopped = $"sending stopped ({stoppedBy.Replace('_', ' ')}) at {Round(steadyTo)} s";
        // A window of a few milliseconds is no measurement either: a request bound landing on the ramp's end (the 50th
        // arrival of --rate 10 --ramp 10 is due at 10 s) stopped sending one loop wake-up later and read 0 or hundreds/s.
        // The bound is fixed, not a share of the run: it is about the server's batches (a shorter window holds a batch or two),
        // not the run's length. Compared in milliseconds: --duration 2.2 --ramp 1.2 came to 0.9999999 s.
        var steadyNotMeasured = options.Ramp > TimeSpan.Zero && steadyTo <= steadyFrom
            ? $"{stopped}, within the {Round(steadyFrom)} s ramp: the run never reached its steady load"
            : Round(steadyTo - steadyFrom) < MinSteadyWindowS
                ? $"{stopped}, {Round(steadyTo - steadyFrom)} s after {(steadyFrom > 0 ? $"the {Round(steadyFrom)} s ramp" : "the start")}: too short to measure a steady rate (at least {MinSteadyWindowS} s" +
                  (stoppedBy == StopReasons.Duration ? $"; give --duration {Round(steadyFrom + MinSteadyWindowS)} or more for one)" : ")")
                : null;
        // No completion can come before the first launch plus the quickest round trip: without a ramp the window starts at
        // 0, a whole latency earlier, and its start would pass for a stall.
        var earliestCompletion = completed.Count == 0 ? 0 : records.Min(r => r.StartedS) + completed.Min(r => r.ClientMs ?? 0) / 1000;
        double? steady = steadyNotMeasured is not null ? null : SteadyRate(completed.Select(r => r.FinishedS!.Value).Where(f => f >= steadyFrom && f <= steadyTo).ToList(), steadyFrom, steadyTo, earliestCompletion);
        var throughput = new ThroughputFigures(Round(counts.Accepted / lastAccept), Round(completed.Count / completedOver), steady is { } s ? Round(s) : null, steadyNotMeasured);

        var latency = new LatencyFigures(
            Summary(records.Select(r => r.SubmitMs)),
            Summary(completed.Select(r => r.Server?.QueueMs)),
            Summary(completed.Select(r => r.Server?.InferenceMs)),
            Summary(completed.Select(r => r.Server?.TotalMs)),
            Summary(completed.Select(r => r.ClientMs)));

        var run = new RunInfo(options.Queue ? "queue" : "http", result.Target, options.Profile, options.ClosedLoop ? options.Users : 0,
            options.ClosedLoop ? 0 : options.Rate, duration, options.Ramp.TotalSeconds, options.Drain.TotalSeconds, options.Source, result.StartedAt,
            Round(result.Elapsed.TotalSeconds), options.StampsUploads, result.Interrupted, stoppedBy, Round(sendingStopped), RefusedEverything: result.RefusedEverything);
        // Per worker: a second worker could not be told from the first. Rows without a worker_id (an older server) are left out.
        var workers = completed.Where(r => r.Server?.WorkerId is not null).GroupBy(r => r.Server!.WorkerId!).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new WorkerFigures(g.Key, g.Count(), g.Any(r => r.Server!.BatchSize is not null) ? Round(g.Where(r => r.Server!.BatchSize is not null).Average(r => r.Server!.BatchSize!.Value)) : null))
            .ToList();
        return new LoadReport(run, counts, throughput, latency, Timeline(records), Histogram(completed.Select(r => r.Server?.TotalMs).OfType<double>().ToList()), workers);
    }

    /// <summary>Finish times closer than this to the previous one are one moment: a batch's results reach the client within milliseconds.</summary>
    internal const double SameMomentS = 0.01;

    /// <summary>The shortest steady window measured: a batch's results come together (<see cref="SameMomentS"/>), so a shorter one holds a batch or two at most.</summary>
    internal const double MinSteadyWindowS = 1;

    /// <summary>
    /// Completions per second in the steady window: the slope of a least-squares line through (finish time, completions so
    /// far). Results arrive a batch at a time (16 at once at saturation), so a plain count in the window moves in steps of a
    /// whole batch, depending on where the window's edges fall between batches: 16 / 27 s = 0.59 images/s (1.4 %) in the
    /// benchmark, where four phases in two runs all counted exactly 70 batches. The slope measures the rate between
    /// batches (for evenly spaced batches of equal size it is exactly their size over their spacing).
    /// The slope only sees the completions, not the window around them: a stall at either edge, or a few completions close
    /// together (two 5 ms apart are 200/s), would pass for a high rate. So it is kept only for at least three moments (see
    /// <see cref="SameMomentS"/>) and neither edge of the window empty for longer than three times the median spacing of
    /// consecutive moments; otherwise the rate is the count over the window. The start edge is measured from the later of
    /// the window's start and <paramref name="earliestCompletion"/>, the first moment a completion was possible (the first
    /// launch plus the quickest round trip): requests that waited longer than that still show as a stall.
    /// </summary>
    internal static double SteadyRate(IReadOnlyList<double> finishTimes, double windowFrom, double windowTo, double earliestCompletion = 0)
    {
        var fallback = finishTimes.Count / Math.Max(1e-3, windowTo - windowFrom);
        var times = finishTimes.Order().ToList();
        var moments = new List<double>();
        for (var k = 0; k < times.Count; k++)
            if (k == 0 || times[k] - times[k - 1] >= SameMomentS) moments.Add(times[k]);
        if (moments.Count < 3) return fallback;
        var spacings = moments.Zip(moments.Skip(1), (a, b) => b - a).Order().ToList();
        var median = spacings.Count % 2 == 1 ? spacings[spacings.Count / 2] : (spacings[spacings.Count / 2 - 1] + spacings[spacings.Count / 2]) / 2;
        if (moments[0] - Math.Max(windowFrom, earliestCompletion) > 3 * median || windowTo - times[^1] > 3 * median) return fallback;
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
