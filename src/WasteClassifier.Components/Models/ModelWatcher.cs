using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace WasteClassifier.Components.Models;

/// <summary>
/// Loads the active model at start and checks the registry every <c>Model:RefreshSeconds</c>: the safety net
/// behind the <c>ModelPromoted</c> event, for a worker that was disconnected when it was published.
/// </summary>
public sealed class ModelWatcher(RegistryModelProvider provider, ModelOptions options, TimeProvider clock, ILogger<ModelWatcher> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = TimeSpan.FromSeconds(Math.Max(1, options.RefreshSeconds));
        while (!stoppingToken.IsCancellationRequested)
        {
            Exception? failure = null;
            try
            {
                await provider.RefreshAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                failure = e;
            }
            // Wakes for the provider's next try of a version that failed to load when it comes before the next tick: ticks
            // alone skipped past it (a 60 s back-off waited 90 s with the default 30 s). Rounded up to the millisecond, which
            // Task.Delay truncates to: woken early, the refresh would answer the failure and loop on zero delays until due.
            // A try already due (the refresh failed before it: the registry unreachable): the interval.
            var delay = provider.LoadRetryIn is { } retryIn && retryIn > TimeSpan.Zero && retryIn < interval
                ? TimeSpan.FromMilliseconds(Math.Ceiling(retryIn.TotalMilliseconds))
                : interval;
            if (failure is not null)
                logger.LogError(failure, "Could not load the active model; retrying in {Seconds} s", Math.Round(delay.TotalSeconds, 1));
            try
            {
                await Task.Delay(delay, clock, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
