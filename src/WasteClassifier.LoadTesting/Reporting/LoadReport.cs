using WasteClassifier.Api.Stats;

namespace WasteClassifier.LoadTesting.Reporting;

/// <summary>A run summarised: counts, throughput, latency percentiles, a per-second timeline and a latency histogram.</summary>
public sealed record LoadReport(
    RunInfo Run,
    RequestCounts Counts,
    ThroughputFigures Throughput,
    LatencyFigures LatencyMs,
    IReadOnlyList<TimelinePoint> Timeline,
    IReadOnlyList<HistogramBin> EndToEndHistogram,
    IReadOnlyList<WorkerFigures>? Workers = null)
{
    public static LoadReport From(LoadRunResult result) => LoadReportBuilder.Build(result);
}

/// <param name="UniqueUploads">Every upload was new content (HTTP mode), rather than the images' bytes repeating.</param>
/// <param name="Interrupted">
/// Cancelled (Ctrl+C or SIGTERM) before the duration and drain were over; requests still open then are counted apart
/// (<see cref="RequestCounts.OutstandingAtInterrupt"/>), not as failed.
/// </param>
/// <param name="StoppedBy">
/// Why sending stopped: <c>duration</c> (reached), <c>request_bound</c> (<c>--max-requests</c>), <c>interrupted</c> or
/// <c>refused</c> (every image refused before any was accepted, or the caller's key refused since the last acceptance:
/// <see cref="RefusedEverything"/> says how).
/// </param>
/// <param name="SendingStoppedS">When sending stopped, in seconds since the start.</param>
/// <param name="CleanupFollows">
/// <c>--cleanup</c> removes the run after this report was written: what it removed is in the command's log, not here.
/// </param>
/// <param name="RefusedEverything">When the run stopped sending because the target refused every image or the caller: how (the refusals by reason).</param>
public sealed record RunInfo(string Mode, string Target, string? Profile, int Users, double RatePerS, double DurationS, double RampS, double DrainS,
    string Source, DateTimeOffset StartedAt, double ElapsedS, bool UniqueUploads, bool Interrupted, string StoppedBy = StopReasons.Duration,
    double SendingStoppedS = 0, bool CleanupFollows = false, string? RefusedEverything = null);

public static class StopReasons
{
    public const string Duration = "duration";
    public const string RequestBound = "request_bound";
    public const string Interrupted = "interrupted";
    public const string Refused = "refused";
}

/// <param name="Submitted">Requests started (each is one image), but for those in <see cref="ThrottledAtEnd"/>.</param>
/// <param name="Failed">Finished as failed, plus those not finished by the run's deadline (not those open at an interrupt).</param>
/// <param name="Throttled">
/// 429/503 answers that were waited out and retried (not failures); one answering a submission after submissions stopped,
/// or whose wait they cut short, is not retried and ends the request instead (see <see cref="ThrottledAtEnd"/>).
/// </param>
/// <param name="ArrivalsDelayed">Open loop: arrivals sent late because the most requests allowed were outstanding.</param>
/// <param name="ArrivalsNotSent">Open loop: arrivals due before the end never sent, for the same reason (not in Submitted).</param>
/// <param name="ThrottledAtEnd">
/// Submissions throttled when submissions stopped, so never accepted nor retried: not failures (not in Submitted or Failed).
/// </param>
/// <param name="OutstandingAtInterrupt">
/// Submitted, and still open when the run was interrupted: neither completed nor failed (the server may complete them).
/// </param>
public sealed record RequestCounts(int Submitted, int Accepted, int Completed, int Failed, int Unfinished, int Throttled, double FailurePercent,
    IReadOnlyDictionary<string, int> FailuresByReason, int ArrivalsDelayed = 0, int ArrivalsNotSent = 0, int ThrottledAtEnd = 0, int OutstandingAtInterrupt = 0);

/// <param name="AcceptedPerS">Images accepted per second until the last was accepted (at most the duration).</param>
/// <param name="CompletedPerS">
/// Images completed per second until the last completed (the drain included) or sending stopped, whichever was later.
/// </param>
/// <param name="SteadyCompletedPerS">
/// Completions per second after the ramp and before sending stopped (at the duration, or sooner when the request bound,
/// Ctrl+C or SIGTERM ended the run), as the slope of completions over time (results arrive a batch at a time), or the
/// count over that window where the slope would mislead (see LoadReportBuilder.SteadyRate). Null when sending stopped
/// within the ramp (the run never reached its steady load), or less than a second after it (too short to measure):
/// <see cref="SteadyNotMeasured"/> says which.
/// </param>
/// <param name="SteadyNotMeasured">Why there is no steady figure, or null.</param>
public sealed record ThroughputFigures(double AcceptedPerS, double CompletedPerS, double? SteadyCompletedPerS, string? SteadyNotMeasured = null);

/// <param name="EndToEnd">Server side, from the database: row created (upload accepted) to result written.</param>
/// <param name="Client">As the client saw it: first submit attempt to seeing the final status (includes polling delay).</param>
public sealed record LatencyFigures(LatencySummary Submit, LatencySummary QueueWait, LatencySummary Inference, LatencySummary EndToEnd, LatencySummary Client);

/// <summary>
/// What happened in one second of the run: <see cref="DurationS"/> is 1, except for the last second, cut short where the
/// run's last event fell.
/// </summary>
public sealed record TimelinePoint(int Second, double DurationS, int Accepted, int Completed, int Failed, double? EndToEndP50Ms, double? EndToEndP95Ms)
{
    /// <summary>A second shorter than this holds too few events to show as a rate.</summary>
    public const double MinRateDurationS = 0.2;

    /// <summary>Events per second in this point's time, or null where it is too short to say.</summary>
    public double? Rate(int count) => DurationS >= MinRateDurationS ? Math.Round(count / DurationS, 3) : null;
}

public sealed record HistogramBin(double FromMs, double ToMs, int Count);

/// <summary>One worker's share of the run's completions (by the result rows' worker_id), and its mean batch size.</summary>
public sealed record WorkerFigures(string WorkerId, int Completed, double? MeanBatchSize);
