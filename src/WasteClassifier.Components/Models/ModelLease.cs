using WasteClassifier.Core.Inference;

namespace WasteClassifier.Components.Models;

/// <summary>
/// A model shared by the provider and the batches using it. It is disposed only when the last holder lets go,
/// so neither a model swap nor shutdown can free a session while a batch is running on it.
/// </summary>
public sealed class SharedModel(IImageClassifier classifier)
{
    private int _references = 1; // the provider's own reference

    public IImageClassifier Classifier => classifier;

    /// <summary>Takes a reference unless the model has already been released by everyone.</summary>
    public bool TryAcquire()
    {
        while (true)
        {
            var current = Volatile.Read(ref _references);
            if (current == 0) return false;
            if (Interlocked.CompareExchange(ref _references, current + 1, current) == current) return true;
        }
    }

    public void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0) classifier.Dispose();
    }
}

/// <summary>One batch's hold on a model; dispose it when the batch is done.</summary>
public sealed class ModelLease(SharedModel model) : IDisposable
{
    private int _released;

    public IImageClassifier Classifier => model.Classifier;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) model.Release();
    }
}
