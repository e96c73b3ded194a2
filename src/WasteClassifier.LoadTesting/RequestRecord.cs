using WasteClassifier.LoadTesting.Targets;

namespace WasteClassifier.LoadTesting;

/// <summary>What happened to one image: times are seconds since the run started, durations milliseconds.</summary>
public sealed class RequestRecord
{
    public double StartedS { get; set; }
    public double? AcceptedS { get; set; }
    public double? FinishedS { get; set; }

    /// <summary>Duration of the submission that was accepted (throttled attempts excluded).</summary>
    public double? SubmitMs { get; set; }

    /// <summary>From the first submission attempt until the client saw the final status.</summary>
    public double? ClientMs { get; set; }

    public RequestOutcome Outcome { get; set; } = RequestOutcome.Unfinished;
    public string? Reason { get; set; }

    /// <summary>429/503 answers this request received and waited out (not one that ended it after submissions stopped).</summary>
    public int Throttled { get; set; }

    public ServerTimings? Server { get; set; }

    /// <summary>
    /// Its submission got no answer from the server (a connection refused or reset, a timeout, a proxy's 502/504; in queue
    /// mode, a queued row the database did not record): a closed-loop user backs off before its next. Not part of the report.
    /// </summary>
    internal bool NoAnswer { get; set; }
}

public enum RequestOutcome
{
    Completed,
    Failed,
    Unfinished,

    /// <summary>
    /// Throttled once submissions had stopped (or its wait to retry cut short when they did): never accepted and not
    /// retried, but nothing failed; reported apart, not as submitted or failed.
    /// </summary>
    ThrottledAtEnd,

    /// <summary>
    /// Still open when the run was interrupted (Ctrl+C, SIGTERM): its fate is unknown (the server may well complete it), so
    /// it is reported apart, not as failed.
    /// </summary>
    OutstandingAtInterrupt,
}
