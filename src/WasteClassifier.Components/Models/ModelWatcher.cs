using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace WasteClassifier.Components.Models;

/// <summary>
/// Loads the active model at start and checks the registry every <c>Model:RefreshSeconds</c>: the safety net
/// behind the <c>ModelPromoted</c> event, for a worker that was disconnected when it was published.
/// </summary>
public sealed class ModelWatcher(RegistryModelProvider provider, ModelOptions options, TimeProvider clock, ILogger<ModelWatcher> logger) : BackgroundService
{
    /// <summary>Added to a wake for a retry, so a timer firing early still finds the retry due.</summary>
    internal static readonly TimeSpan WakeSlack = TimeSpan.FromMilliseconds(100);

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
            // alone skipped past it (a 60 s back-off waited 90 s with the default 30 s). With slack: a timer may fire a few
            // milliseconds early (Linux's coarse tick count), and a wake before the try is due only gets the recorded failure.
            // A try already due (the refresh failed before it: the registry unreachable): the interval.
            var delay = provider.LoadRetryIn is { } retryIn && retryIn > TimeSpan.Zero && retryIn < interval
                ? TimeSpan.FromMilliseconds(Math.Ceiling(retryIn.TotalMilliseconds)) + WakeSlack
                : interval;
            // The recorded failure (a batch tried first, or an early wake): logged, with its stack, when it happened.
            if (failure is ModelLoadBackOffException)
                logger.LogWarning("The active model failed to load before ({Reason}); trying again in {Seconds} s", failure.Message, Math.Round(delay.TotalSeconds, 1));
            else if (failure is not null)
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
