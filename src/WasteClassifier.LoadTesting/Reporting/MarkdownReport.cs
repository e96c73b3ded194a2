using System.Globalization;
using System.Text;
using WasteClassifier.Api.Stats;

namespace WasteClassifier.LoadTesting.Reporting;

/// <summary>The run as Markdown: first a row in the shape of the original Locust results, then the details.</summary>
public static class MarkdownReport
{
    public const string LocustHeader = "| Users | Requests/s | Failures | Failure % | Mean (ms) | p95 (ms) |\n|---:|---:|---:|---:|---:|---:|\n";

    /// <summary>One row: completed images per second, failures, and end-to-end mean and p95 (from the database).</summary>
    public static string LocustRow(LoadReport report)
    {
        var who = report.Run.Users > 0 ? report.Run.Users.ToString(CultureInfo.InvariantCulture) : $"{F(report.Run.RatePerS)}/s open loop";
        if (report.Run.Profile is { } profile) who += $" ({profile})";
        var e2e = report.LatencyMs.EndToEnd;
        return $"| {who} | {F(report.Throughput.CompletedPerS)} | {report.Counts.Failed} | {F(report.Counts.FailurePercent)} % | {F(e2e.Mean)} | {F(e2e.P95)} |\n";
    }

    public static string Render(LoadReport report)
    {
        var run = report.Run;
        var c = report.Counts;
        var md = new StringBuilder();
        md.Append(CultureInfo.InvariantCulture, $"# Load test {run.Source}\n\n");
        md.Append(CultureInfo.InvariantCulture, $"{run.Mode} mode against {run.Target}, {F(run.DurationS)} s (ramp {F(run.RampS)} s), started {run.StartedAt:u}, ran {F(run.ElapsedS)} s");
        if (run.Mode == "http") md.Append(run.UniqueUploads ? "; every upload new content" : "; the images' bytes repeat (the API reuses its records of them)");
        md.Append(run.Interrupted ? "; **interrupted** before its end (requests still open then are counted apart, not as failed)" : "");
        md.Append(CultureInfo.InvariantCulture, $". Sending stopped at {F(run.SendingStoppedS)} s: {StopReason(run.StoppedBy)}.\n\n");
        if (run.RefusedEverything is { } refusals)
            md.Append(CultureInfo.InvariantCulture, $"**Stopped early**: {refusals}. Nothing would be accepted: check the images, the API key and the target. " +
                      $"Requests still in flight then and refused later are counted in the failures by reason below.\n\n");
        if (run.CleanupFollows)
            // Written before the cleanup ran: what it meant to do, not what it did.
            md.Append("--cleanup was to remove the run after this report was written; the command's log says what it removed, or left " +
                      "(`--cleanup --source` with the source above removes what is left).\n\n");
        md.Append(LocustHeader).Append(LocustRow(report)).Append('\n');
        // Queue mode has no upload and nothing answers 429: its notes say what it measured.
        var queue = run.Mode == "queue";
        md.Append(queue
            ? "Requests/s counts completed images; mean and p95 are end to end (queued row recorded and message sent → result written, from the database).\n\n"
            : "Requests/s counts completed images; mean and p95 are end to end (upload accepted → result written, from the database).\n\n");
        if (queue) md.Append(CultureInfo.InvariantCulture, $"Submitted {c.Submitted}, queued {c.Accepted}, completed {c.Completed}, failed {c.Failed} (of which unfinished {c.Unfinished}).\n");
        else md.Append(CultureInfo.InvariantCulture, $"Submitted {c.Submitted}, accepted {c.Accepted}, completed {c.Completed}, failed {c.Failed} (of which unfinished {c.Unfinished}), throttled answers retried {c.Throttled}.\n");
        if (c.ArrivalsDelayed > 0 || c.ArrivalsNotSent > 0)
            md.Append(CultureInfo.InvariantCulture, $"The open loop fell behind its rate: {c.ArrivalsDelayed} arrivals waited for one of the requests allowed in flight, {c.ArrivalsNotSent} due before the end were not sent.\n");
        if (c.OutstandingAtInterrupt > 0)
            md.Append(CultureInfo.InvariantCulture, $"Outstanding when interrupted: {c.OutstandingAtInterrupt} (submitted, neither completed nor failed when the run was stopped).\n");
        if (c.ThrottledAtEnd > 0)
            md.Append(CultureInfo.InvariantCulture, $"Throttled when submissions stopped, not retried: {c.ThrottledAtEnd} (neither submitted nor failed).\n");
        if (c.Accepted == 0 && c.ThrottledAtEnd > 0)
            md.Append("**No submission was accepted**: the target answered every one 429/503 until the end (an outage or a limit), so this run measured nothing.\n");
        md.Append(CultureInfo.InvariantCulture, $"Throughput: accepted {F(report.Throughput.AcceptedPerS)}/s, completed {F(report.Throughput.CompletedPerS)}/s, steady {(report.Throughput.SteadyNotMeasured is { } why ? $"n/a ({why})" : $"{F(report.Throughput.SteadyCompletedPerS)}/s")}.\n\n");
        if (c.FailuresByReason.Count > 0)
        {
            md.Append("| Failure reason | Count |\n|---|---:|\n");
            foreach (var (reason, count) in c.FailuresByReason) md.Append(CultureInfo.InvariantCulture, $"| {reason} | {count} |\n");
            md.Append('\n');
        }
        if (report.Workers is { Count: > 0 } workers)
        {
            md.Append("| Worker | Completed | Mean batch size |\n|---|---:|---:|\n");
            foreach (var w in workers) md.Append(CultureInfo.InvariantCulture, $"| {w.WorkerId} | {w.Completed} | {F(w.MeanBatchSize)} |\n");
            md.Append('\n');
        }
        md.Append("| Latency (ms) | n | mean | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|---:|\n");
        foreach (var (name, s) in Latencies(report.LatencyMs))
            md.Append(CultureInfo.InvariantCulture, $"| {name} | {s.Count} | {F(s.Mean)} | {F(s.P50)} | {F(s.P95)} | {F(s.P99)} | {F(s.Max)} |\n");
        return md.ToString();
    }

    private static string StopReason(string stoppedBy) => stoppedBy switch
    {
        StopReasons.RequestBound => "the request bound (--max-requests) was reached",
        StopReasons.Interrupted => "interrupted (Ctrl+C or SIGTERM)",
        StopReasons.Refused => "the target refused every image or the caller",
        _ => "the duration was reached",
    };

    public static IEnumerable<(string Name, LatencySummary Summary)> Latencies(LatencyFigures l) =>
    [
        ("submit", l.Submit), ("queue wait", l.QueueWait), ("inference (batch)", l.Inference), ("end to end", l.EndToEnd), ("client round trip", l.Client),
    ];

    public static string F(double? value) => value is { } v ? v.ToString(v >= 100 ? "F0" : "0.##", CultureInfo.InvariantCulture) : "–";
}
