using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Components.Classifying;

/// <summary>How long the heartbeat row of a worker not seen since is kept (<c>Worker:HeartbeatRetentionHours</c>).</summary>
public sealed record WorkerHeartbeatRetention(int Hours);

/// <summary>
/// Deletes the heartbeat rows of workers not seen for <c>Worker:HeartbeatRetentionHours</c>, at start and then hourly. Run by
/// every API process and every worker (once in a process that is both): a deployment scaled to zero workers still has an
/// API, so the retention holds whether or not a worker runs.
/// </summary>
public sealed class WorkerHeartbeatSweeper(IServiceScopeFactory scopes, WorkerHeartbeatRetention retention, TimeProvider clock,
    ILogger<WorkerHeartbeatSweeper> logger) : BackgroundService
{
    private static readonly TimeSpan SweepInterval = TimeSpan.FromHours(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await SweepAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The next pass tries again; a row kept an hour longer is harmless.
                logger.LogWarning("Deleting the heartbeats of workers not seen for {Hours} h failed: {Reason}", retention.Hours, e.Message);
            }
            try
            {
                await Task.Delay(SweepInterval, clock, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
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
