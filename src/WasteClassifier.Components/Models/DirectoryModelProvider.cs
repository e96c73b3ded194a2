using Microsoft.Extensions.Logging;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.Components.Models;

/// <summary>Serves the model found in a folder (the bundled default unless configured otherwise), loaded once.</summary>
public sealed class DirectoryModelProvider(ModelOptions options, ILogger<DirectoryModelProvider> logger) : IModelProvider, IDisposable
{
    private readonly SemaphoreSlim _loading = new(1, 1);
    private SharedModel? _model;
    private bool _disposed;

    public ModelCard? LoadedCard => _model?.Classifier.Card;

    public async Task<ModelLease> AcquireAsync(CancellationToken cancellationToken)
    {
        var model = _model ?? await LoadAsync(cancellationToken);
        ObjectDisposedException.ThrowIf(_disposed || !model.TryAcquire(), this);
        return new ModelLease(model);
    }

    private async Task<SharedModel> LoadAsync(CancellationToken cancellationToken)
    {
        await _loading.WaitAsync(cancellationToken);
        try
        {
            if (_model is not null) return _model;
            var started = System.Diagnostics.Stopwatch.StartNew();
            var classifier = await Task.Run(() => ModelLoader.Load(options.Directory, options.ToInferenceOptions()), cancellationToken);
            logger.LogInformation("Loaded model {ModelVersion} from {Directory} in {ElapsedMs} ms",
                classifier.Card.Version, options.Directory, started.ElapsedMilliseconds);
            return _model = new SharedModel(classifier);
        }
        finally
        {
            _loading.Release();
        }
    }

    /// <summary>Drops the provider's reference; a batch still running keeps the model alive until it finishes.</summary>
    public void Dispose()
    {
        _disposed = true;
        _model?.Release();
    }
}
