using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace WasteClassifier.Components.Models;

/// <summary>Loads the model while the process starts, so the first batch does not pay for it and health can report it.</summary>
public sealed class ModelWarmup(IModelProvider models, ILogger<ModelWarmup> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            using var lease = await models.AcquireAsync(stoppingToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogError(e, "The model could not be loaded; batches will fail until it can be");
        }
    }
}
