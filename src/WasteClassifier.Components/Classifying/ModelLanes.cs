using WasteClassifier.Components.Models;

namespace WasteClassifier.Components.Classifying;

/// <summary>
/// A worker's turns at the model: as many batches run inference at once as the model has lanes
/// (<see cref="ModelOptions.InferenceLanes"/>); the others wait asynchronously, holding no thread-pool thread.
/// </summary>
public sealed class ModelLanes(ModelOptions options) : IDisposable
{
    private readonly SemaphoreSlim turns = new(options.ResolvedLanes, options.ResolvedLanes);

    public int Count => options.ResolvedLanes;

    /// <summary>
    /// Whether a Run does all its work on the thread that calls it (one intra-op thread per lane, the default): that
    /// thread's CPU time is then the model's.
    /// </summary>
    public bool RunOnCallingThread { get; } = options.ToInferenceOptions().IntraOpThreads == 1;

    /// <summary>Whether every lane is running a batch right now.</summary>
    public bool AllBusy => turns.CurrentCount == 0;

    public Task WaitAsync(CancellationToken cancellationToken) => turns.WaitAsync(cancellationToken);

    public void Release() => turns.Release();

    public void Dispose() => turns.Dispose();
}
