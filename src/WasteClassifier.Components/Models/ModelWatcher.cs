using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace WasteClassifier.Components.Models;

/// <summary>
/// Loads the active model at start and checks the registry every <c>Model:RefreshSeconds</c>: the safety net
/// behind the <c>ModelPromoted</c> event, for a worker that was disconnected when it was published.
/// </summary>
public sealed class ModelWatcher(RegistryModelProvider provider, ModelOptions options, ILogger<ModelWatcher> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = TimeSpan.FromSeconds(Math.Max(1, options.RefreshSeconds));
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await provider.RefreshAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError(e, "Could not load the active model; retrying in {Seconds} s", interval.TotalSeconds);
            }
            try
            {
                await Task.Delay(interval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
