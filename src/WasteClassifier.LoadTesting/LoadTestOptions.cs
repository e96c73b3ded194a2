namespace WasteClassifier.LoadTesting;

/// <summary>What one load test does: where it sends, how hard, for how long, and where the report goes.</summary>
public sealed record LoadTestOptions
{
    /// <summary>The API's base URL (HTTP mode); null in queue mode.</summary>
    public Uri? Target { get; init; }

    /// <summary>Send ClassifyImage straight to the classify queue for images stored beforehand (loads the workers alone).</summary>
    public bool Queue { get; init; }

    /// <summary>Closed loop: each user submits one image, waits for its result, then submits the next.</summary>
    public int Users { get; init; }

    /// <summary>Open loop: images per second, whatever the answers; 0 means closed loop.</summary>
    public double Rate { get; init; }

    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Users start (or the rate rises) evenly over this time.</summary>
    public TimeSpan Ramp { get; init; } = TimeSpan.Zero;

    /// <summary>After <see cref="Duration"/>, how long results still outstanding are awaited before they count as unfinished.</summary>
    public TimeSpan Drain { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>No more submissions than this, whatever the duration.</summary>
    public int MaxRequests { get; init; } = 100_000;

    /// <summary>Open loop: most requests outstanding at once; arrivals beyond it wait.</summary>
    public int MaxInFlight { get; init; } = 2_000;

    /// <summary>First poll after this; later polls back off ×1.5 up to <see cref="MaxPollInterval"/>.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    public TimeSpan MaxPollInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// HTTP mode: each poll asks the API to hold it this long until the result is there (<c>?wait=</c>), as a client
    /// should; zero polls on <see cref="PollInterval"/> instead, as a client without long polling would.
    /// </summary>
    public TimeSpan LongPoll { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Per HTTP call; a call that takes longer fails with reason <c>timeout</c>.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// HTTP mode: every upload is new content (<see cref="Images.UniqueStamp"/>), as a camera's frames are. When false the
    /// images' bytes repeat, and from the second round on the API finds each one already recorded. Queue mode stores each
    /// image once by design: it makes each image new content once per run (<see cref="StampsRunImages"/>), so runs never
    /// share image rows; when false, its images are stored unchanged and may be rows of other runs.
    /// </summary>
    public bool UniqueUploads { get; init; } = true;

    /// <summary>Whether this run stamps its uploads: <see cref="UniqueUploads"/> in HTTP mode.</summary>
    public bool StampsUploads => UniqueUploads && !Queue;

    /// <summary>
    /// Whether this run stamps each image once for itself: <see cref="UniqueUploads"/> in queue mode. Shared by content hash,
    /// an image row another run left (named for that run) was that run's to clean up: its --cleanup --source deleted the
    /// object this run was classifying.
    /// </summary>
    public bool StampsRunImages => UniqueUploads && Queue;

    /// <summary>Permit a target that is not on this machine.</summary>
    public bool AllowRemote { get; init; }

    /// <summary>
    /// Tags every classification of the run (the <c>source</c> field), so it can be found and cleaned up. The random part
    /// keeps two runs started in the same second apart: one's cleanup never removes the other's rows.
    /// </summary>
    public string Source { get; init; } = $"loadtest-{DateTime.UtcNow:yyyyMMddHHmmss}-{Guid.NewGuid().ToString("N")[..6]}";

    /// <summary>The profile name, for the report only.</summary>
    public string? Profile { get; init; }

    public bool ClosedLoop => Rate <= 0;

    /// <summary>The longest duration, ramp or drain: a week keeps the run's timers (up to duration + drain) within their limit of 49 days.</summary>
    public static readonly TimeSpan MaxSpan = TimeSpan.FromDays(7);

    public void Validate()
    {
        if (Queue == (Target is not null)) throw new ArgumentException("give either a target URL or queue mode");
        if (ClosedLoop && Users < 1) throw new ArgumentException("a closed-loop run needs at least one user");
        if (Duration <= TimeSpan.Zero) throw new ArgumentException("duration must be positive");
        if (Duration > MaxSpan || Ramp > MaxSpan || Drain > MaxSpan) throw new ArgumentException($"duration, ramp and drain must each be at most {MaxSpan.TotalSeconds} s");
        // The API holds a poll for at most 30 s (ClassificationsApi.MaxWaitSeconds) and refuses longer waits.
        if (LongPoll < TimeSpan.Zero || LongPoll > TimeSpan.FromSeconds(30)) throw new ArgumentException("long poll must be 0 to 30 s");
        if (Target is not null && !AllowRemote) TargetGuard.EnsureLoopback(Target);
    }
}
