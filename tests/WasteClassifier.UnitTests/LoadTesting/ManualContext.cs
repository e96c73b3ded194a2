using System.Collections.Concurrent;

namespace WasteClassifier.UnitTests.LoadTesting;

/// <summary>
/// A synchronization context whose posted work runs only when the test runs it (<see cref="RunPosted"/>). Code started on
/// it (<see cref="Start{T}"/>) comes back to it after each await: an open loop's launching loop then goes on at a moment the
/// test chooses, before or after the timers it fires on a <see cref="ManualClock"/>, where on a thread of its own it went on
/// at a moment no test could see.
/// </summary>
internal sealed class ManualContext : SynchronizationContext
{
    private readonly ConcurrentQueue<(SendOrPostCallback Callback, object? State)> _posted = new();

    /// <summary>Work posted and not yet run.</summary>
    public int Posted => _posted.Count;

    public override void Post(SendOrPostCallback d, object? state) => _posted.Enqueue((d, state));

    public override void Send(SendOrPostCallback d, object? state) => throw new NotSupportedException();

    public override SynchronizationContext CreateCopy() => this;

    /// <summary>Runs <paramref name="start"/> on this context, up to its first await that does not complete at once.</summary>
    public T Start<T>(Func<T> start)
    {
        var previous = Current;
        SetSynchronizationContext(this);
        try
        {
            return start();
        }
        finally
        {
            SetSynchronizationContext(previous);
        }
    }

    /// <summary>Runs what was posted, and what that posts, until nothing is left.</summary>
    public void RunPosted() => Start(() =>
    {
        while (_posted.TryDequeue(out var work)) work.Callback(work.State);
        return 0;
    });
}
