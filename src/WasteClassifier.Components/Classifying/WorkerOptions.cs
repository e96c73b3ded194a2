namespace WasteClassifier.Components.Classifying;

/// <summary>Configuration section <c>Worker</c>.</summary>
public sealed class WorkerOptions
{
    public const string Section = "Worker";

    /// <summary>Recorded on every result; defaults to host name + process id.</summary>
    public string Id { get; set; } = $"{Environment.MachineName}-{Environment.ProcessId}".ToLowerInvariant();

    /// <summary>Most messages handed to one inference call.</summary>
    public int BatchSize { get; set; } = 16;

    /// <summary>
    /// How long a partial batch waits for more messages while another batch holds the model; a worker with nothing
    /// else to do starts a batch at once.
    /// </summary>
    public int BatchWaitMs { get; set; } = 25;

    /// <summary>
    /// Batches in progress at once: one more than the model's lanes, so a batch is fetched and decoded while the others
    /// are in the model. 0 (the default) sets it from <c>Model:InferenceLanes</c>.
    /// </summary>
    public int PipelineDepth { get; set; }

    /// <summary>Threads decoding images of one batch; defaults to the core count.</summary>
    public int DecodeParallelism { get; set; } = Environment.ProcessorCount;

    /// <summary>
    /// Claims of one row before it is failed (<c>too_many_attempts</c>) instead of processed: a batch that stops its worker
    /// (out of memory, a native crash) is otherwise redelivered for ever. Every try claims the row, the in-process retries
    /// of a transient fault included (up to 7 in one delivery), so the default leaves them whole and a few redeliveries more.
    /// </summary>
    public int MaxAttempts { get; set; } = 10;

    /// <summary>Largest accepted image, width × height, checked from the header before decoding.</summary>
    public long MaxPixels { get; set; } = 40_000_000;

    /// <summary>How often the worker records its presence (<c>worker_heartbeats</c>); missing after 3 intervals without one.</summary>
    public int HeartbeatSeconds { get; set; } = 15;

    /// <summary>How long the row of a worker not seen since is kept (stopped and missing workers alike).</summary>
    public int HeartbeatRetentionHours { get; set; } = 24;

    private const int MaxHeartbeatRetentionHours = 8760;

    // The column that records it.
    private const int MaxIdLength = 128;

    /// <summary>
    /// Refuses at start, naming the setting, what would stall or break every batch: a batch size of 0 took no message
    /// (each waited for ever), a negative one stopped the scheduler; no decode thread, pixel or attempt allowed fails
    /// everything; an id longer than its column fails every claim.
    /// </summary>
    public WorkerOptions Validated()
    {
        foreach (var (name, value, least) in new (string, long, long)[]
        {
            (nameof(BatchSize), BatchSize, 1), (nameof(DecodeParallelism), DecodeParallelism, 1), (nameof(MaxAttempts), MaxAttempts, 1),
            (nameof(MaxPixels), MaxPixels, 1), (nameof(BatchWaitMs), BatchWaitMs, 0), (nameof(PipelineDepth), PipelineDepth, 0),
            (nameof(HeartbeatSeconds), HeartbeatSeconds, 1),
        })
        {
            if (value < least)
                throw new InvalidOperationException($"{Section}:{name} is {value}; it must be {least} or more" +
                    (name == nameof(PipelineDepth) ? " (0, the default: one more than Model:InferenceLanes)" : ""));
        }
        // An interval past an hour would be judged missing only after hours; a day's interval overflows nothing but helps no one.
        if (HeartbeatSeconds > 3600)
            throw new InvalidOperationException($"{Section}:{nameof(HeartbeatSeconds)} is {HeartbeatSeconds}; it must be 3600 or less");
        ValidatedRetentionHours(HeartbeatRetentionHours);
        if (string.IsNullOrWhiteSpace(Id) || Id.Length > MaxIdLength)
            throw new InvalidOperationException($"{Section}:Id '{Id}' must be 1 to {MaxIdLength} characters, not blank");
        return this;
    }

    /// <summary>
    /// <paramref name="hours"/> if it is a valid <see cref="HeartbeatRetentionHours"/>, else refuses it naming the setting: an
    /// API process, which runs no worker and so validates nothing else of this section, sweeps by it too.
    /// </summary>
    public static int ValidatedRetentionHours(int hours)
    {
        if (hours < 1)
            throw new InvalidOperationException($"{Section}:{nameof(HeartbeatRetentionHours)} is {hours}; it must be 1 or more");
        // The sweep subtracts it from the database's now: a huge value goes before year 1 and every sweep throws.
        if (hours > MaxHeartbeatRetentionHours)
            throw new InvalidOperationException($"{Section}:{nameof(HeartbeatRetentionHours)} is {hours}; it must be {MaxHeartbeatRetentionHours} (a year) or less");
        return hours;
    }
}
