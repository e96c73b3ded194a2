namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>
/// A worker process's presence: upserted every <c>Worker:HeartbeatSeconds</c> by the process itself (a stand-alone worker,
/// or the worker inside the API), so an idle worker is seen as up. One row per worker id; swept after
/// <c>Worker:HeartbeatRetentionHours</c> without a beat.
/// </summary>
public class WorkerHeartbeat
{
    /// <summary>The id its results carry (<c>Worker:Id</c>).</summary>
    public required string WorkerId { get; set; }

    public required string HostName { get; set; }

    /// <summary>When the process started, by the worker's own clock.</summary>
    public DateTime ProcessStartedAt { get; set; }

    /// <summary>The model version it had loaded at its last beat; null before its first load.</summary>
    public string? ModelVersion { get; set; }

    /// <summary>Its interval, so a reader judges each worker by its own setting.</summary>
    public int HeartbeatSeconds { get; set; }

    /// <summary>The last beat, by the database's clock: workers' clocks may disagree with each other and with the API's.</summary>
    public DateTime LastSeenAt { get; set; }

    /// <summary>Set (database clock) when the process stopped gracefully; cleared by a later beat of the same id.</summary>
    public DateTime? StoppedAt { get; set; }
}
