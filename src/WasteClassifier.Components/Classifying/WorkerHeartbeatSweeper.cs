using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Components.Classifying;

/// <summary>How long the heartbeat row of a worker not seen since is kept (<c>Worker:HeartbeatRetentionHours</c>).</summary>
public sealed record WorkerHeartbeatRetention(int Hours);

/// <summary>
/// Deletes the heartbeat rows of workers not seen for <c>Worker:HeartbeatRetentionHours</c>, at start and then hourly. Run by
/// every API process and every worker (once in a process that is both): a deployment scaled to zero workers still has an
/// API, so the retention holds whether or not a worker runs. A failed sweep (an API started before <c>wastectl migrate</c>,
/// a database outage) is tried again after <see cref="FirstRetry"/>, the wait doubling at each failure up to the hourly
/// interval; a failure is logged when its reason changes, the same reason again at most hourly.
/// </summary>
public sealed class WorkerHeartbeatSweeper(IServiceScopeFactory scopes, WorkerHeartbeatRetention retention, TimeProvider clock,
    ILogger<WorkerHeartbeatSweeper> logger) : BackgroundService
{
    public static readonly TimeSpan SweepInterval = TimeSpan.FromHours(1);

    /// <summary>The wait after a first failed sweep; it doubles at each failure in a row, up to <see cref="SweepInterval"/>.</summary>
    public static readonly TimeSpan FirstRetry = TimeSpan.FromMinutes(1);

    private readonly RepeatedFailureLog _failures = new(SweepInterval, clock);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var retry = FirstRetry;
        while (!stoppingToken.IsCancellationRequested)
        {
            TimeSpan wait;
            try
            {
                await SweepAsync(stoppingToken);
                if (_failures.Succeeded()) logger.LogInformation("Deleting the heartbeats of workers not seen for {Hours} h works again", retention.Hours);
                (wait, retry) = (SweepInterval, FirstRetry);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Sooner than the hourly pass: the table may be there in a minute (migrations run after the API started).
                SweepFailed(e, retry);
                (wait, retry) = (retry, retry * 2 < SweepInterval ? retry * 2 : SweepInterval);
            }
            try
            {
                await Task.Delay(wait, clock, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void SweepFailed(Exception e, TimeSpan retry)
    {
        var reason = ExceptionReasons.LogReason(e);
        if (!_failures.Failed(reason, out var unlogged, out _)) return;
        if (unlogged > 0)
            logger.LogWarning("Deleting the heartbeats of workers not seen for {Hours} h failed: {Reason}; trying again in {Minutes} min (failed {Unlogged} more time(s) for this reason, unlogged, since it was last logged)",
                retention.Hours, reason, retry.TotalMinutes, unlogged);
        else
            // The whole exception with the first warning of a reason; the repeats of the same say only how many there were.
            logger.LogWarning(e, "Deleting the heartbeats of workers not seen for {Hours} h failed: {Reason}; trying again in {Minutes} min", retention.Hours, reason, retry.TotalMinutes);
    }

    /// <summary>One pass; returns how many rows it deleted.</summary>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        using var scope = scopes.CreateScope();
        var deleted = await WorkerPresence.SweepAsync(scope.ServiceProvider.GetRequiredService<ClassifierDbContext>(),
            TimeSpan.FromHours(retention.Hours), cancellationToken);
        if (deleted > 0) logger.LogInformation("Deleted the heartbeats of {Count} worker(s) not seen for {Hours} h", deleted, retention.Hours);
        return deleted;
    }
}
