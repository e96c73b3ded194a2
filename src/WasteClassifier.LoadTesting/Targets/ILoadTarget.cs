using WasteClassifier.LoadTesting.Images;

namespace WasteClassifier.LoadTesting.Targets;

/// <summary>What the load tester talks to: the API over HTTP, or the classify queue and the database directly.</summary>
public interface ILoadTarget : IAsyncDisposable
{
    /// <summary>Describes the target for the report, e.g. the URL.</summary>
    string Description { get; }

    /// <summary>Runs once before the clock starts (queue mode stores the images here).</summary>
    Task PrepareAsync(ImageSet images, CancellationToken cancellationToken);

    /// <summary>
    /// Answers <see cref="ResponseKind.Accepted"/> with the id, <see cref="ResponseKind.Throttled"/>, <see cref="ResponseKind.Failed"/>
    /// (an answer refusing it), or <see cref="ResponseKind.Unavailable"/> (no answer: the request fails, and a closed-loop user backs off).
    /// </summary>
    Task<TargetResponse> SubmitAsync(TestImage image, CancellationToken cancellationToken);

    /// <summary>
    /// Answers <see cref="ResponseKind.Pending"/>, a final kind with the server's timings, <see cref="ResponseKind.Throttled"/>,
    /// or <see cref="ResponseKind.Unavailable"/>.
    /// </summary>
    Task<TargetResponse> PollAsync(string id, CancellationToken cancellationToken);

    /// <summary>Whether a poll is held by the server until the result is there, so the next one may follow at once.</summary>
    bool PollsWait => false;
}

public enum ResponseKind
{
    Accepted,
    Pending,
    Completed,
    Failed,
    Throttled,

    /// <summary>No answer this time (a connection error, a timeout, a 502/504 from a restarting API or its proxy): a poll asks again.</summary>
    Unavailable,
}

/// <param name="Reason">Why a request failed: an HTTP status, an error code from the body or the server's row.</param>
public sealed record TargetResponse(ResponseKind Kind, string? Id = null, string? Reason = null, TimeSpan? RetryAfter = null, ServerTimings? Timings = null)
{
    public static TargetResponse Pending { get; } = new(ResponseKind.Pending);

    public static TargetResponse Fail(string reason) => new(ResponseKind.Failed, Reason: reason);
}

/// <summary>The server's own figures for one classification, as recorded in the database.</summary>
/// <param name="WorkerId">The worker that classified it (the row's worker_id), for the report's per-worker figures.</param>
public sealed record ServerTimings(double? QueueMs, double? InferenceMs, double? TotalMs, int? BatchSize, string? WorkerId = null);
