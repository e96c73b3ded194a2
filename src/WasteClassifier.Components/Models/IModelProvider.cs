using WasteClassifier.Core.Inference;

namespace WasteClassifier.Components.Models;

/// <summary>Hands the worker the model to use for the next batch.</summary>
public interface IModelProvider
{
    /// <summary>A hold on the current model (loaded on first use) that keeps it alive until the lease is disposed.</summary>
    Task<ModelLease> AcquireAsync(CancellationToken cancellationToken);

    /// <summary>The card of the loaded model, or null before the first load.</summary>
    ModelCard? LoadedCard { get; }
}
