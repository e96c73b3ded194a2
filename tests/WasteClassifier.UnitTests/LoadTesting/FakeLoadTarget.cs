using System.Collections.Concurrent;
using WasteClassifier.LoadTesting.Images;
using WasteClassifier.LoadTesting.Targets;

namespace WasteClassifier.UnitTests.LoadTesting;

/// <summary>
/// A target of known behaviour: the n-th submission (1-based) is throttled once if <see cref="ThrottleEvery"/> divides n,
/// fails if <see cref="FailEvery"/> divides n, otherwise completes on its <see cref="PollsToComplete"/>-th poll (the second)
/// with total_ms = 10 × n. Numbering and
/// throttling are decided together, so concurrent users see exactly that sequence.
/// </summary>
internal sealed class FakeLoadTarget : ILoadTarget
{
    private readonly ConcurrentDictionary<string, int> _polls = new();
    private readonly Lock _gate = new();
    private readonly HashSet<int> _throttled = [];
    private int _submissions;
    private int _completions;

    public int FailEvery { get; init; } = int.MaxValue;
    public int ThrottleEvery { get; init; } = int.MaxValue;
    public bool NeverFinishes { get; init; }

    /// <summary>The poll that answers completed; 1 with <see cref="PollsWait"/> completes a request without any wait.</summary>
    public int PollsToComplete { get; init; } = 2;

    /// <summary>Retry-After of the answer that throttles a submission <see cref="ThrottleEvery"/> picks.</summary>
    public TimeSpan ThrottleRetryAfter { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>As a target whose polls the server holds: the runner polls again at once.</summary>
    public bool PollsWait { get; init; }

    /// <summary>Polls answered completed so far.</summary>
    public int Completions => Volatile.Read(ref _completions);

    /// <summary>Every submission is throttled, with this Retry-After.</summary>
    public TimeSpan? AlwaysThrottles { get; init; }

    /// <summary>Once this many submissions were accepted, every later one is throttled with a Retry-After of a minute.</summary>
    public int? ThrottlesAfterAccepting { get; init; }

    /// <summary>Once this many submissions were accepted, every later one is refused with <see cref="RefusalReason"/> (a key revoked mid-run).</summary>
    public int? RefusesAfterAccepting { get; init; }

    /// <summary>The n-th submission's poll for its result throws (as a target that cannot read an answer might), if this divides n.</summary>
    public int ThrowEvery { get; init; } = int.MaxValue;

    /// <summary>Every submission is answered this (a target down, an input it always refuses).</summary>
    public TargetResponse? SubmitAnswer { get; init; }

    /// <summary>Every submission of an image whose file name this picks is refused: answered <see cref="TargetResponse.Fail"/> with <see cref="RefusalReason"/>.</summary>
    public Func<string, bool>? Refuses { get; init; }

    public string RefusalReason { get; init; } = "http_400_not_an_image";

    /// <summary>Submissions are answered only once this task has completed (a slow server): they are in flight until then.</summary>
    public Task? AnswersHeldUntil { get; init; }

    /// <summary>The bytes of every submission, throttled ones included.</summary>
    public ConcurrentQueue<byte[]> Contents { get; } = new();

    public string Description => "fake";

    /// <summary>The images the run prepared the target with.</summary>
    public ImageSet? Prepared { get; private set; }

    /// <summary>Called when the run has prepared the target, just before its clock starts.</summary>
    public Action? OnPrepared { get; init; }

    public Task PrepareAsync(ImageSet images, CancellationToken cancellationToken)
    {
        Prepared = images;
        OnPrepared?.Invoke();
        return Task.CompletedTask;
    }

    public Task<TargetResponse> SubmitAsync(TestImage image, CancellationToken cancellationToken)
    {
        Contents.Enqueue(image.Content);
        return AnswersHeldUntil is { } held ? AnswerOnceReleasedAsync(held, image) : Answer(image);
    }

    private async Task<TargetResponse> AnswerOnceReleasedAsync(Task held, TestImage image)
    {
        await held;
        return await Answer(image);
    }

    private Task<TargetResponse> Answer(TestImage image)
    {
        if (SubmitAnswer is { } answer) return Task.FromResult(answer);
        if (Refuses?.Invoke(image.FileName) == true) return Task.FromResult(TargetResponse.Fail(RefusalReason));
        if (AlwaysThrottles is { } retryAfter) return Task.FromResult(new TargetResponse(ResponseKind.Throttled, RetryAfter: retryAfter));
        int n;
        lock (_gate)
        {
            if (_submissions >= RefusesAfterAccepting) return Task.FromResult(TargetResponse.Fail(RefusalReason));
            if (_submissions >= ThrottlesAfterAccepting)
                return Task.FromResult(new TargetResponse(ResponseKind.Throttled, RetryAfter: TimeSpan.FromMinutes(1)));
            n = _submissions + 1;
            if (n % ThrottleEvery == 0 && _throttled.Add(n))
                return Task.FromResult(new TargetResponse(ResponseKind.Throttled, RetryAfter: ThrottleRetryAfter));
            _submissions = n;
        }
        return Task.FromResult(n % FailEvery == 0 ? TargetResponse.Fail("boom") : new TargetResponse(ResponseKind.Accepted, Id: n.ToString()));
    }

    public Task<TargetResponse> PollAsync(string id, CancellationToken cancellationToken)
    {
        if (NeverFinishes || _polls.AddOrUpdate(id, 1, (_, p) => p + 1) < PollsToComplete) return Task.FromResult(TargetResponse.Pending);
        var n = int.Parse(id);
        if (n % ThrowEvery == 0) throw new InvalidOperationException($"cannot read the answer for {n}");
        Interlocked.Increment(ref _completions);
        return Task.FromResult(new TargetResponse(ResponseKind.Completed, Timings: new ServerTimings(n, 5, 10.0 * n, 4)));
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
