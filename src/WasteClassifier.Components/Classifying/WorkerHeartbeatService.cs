using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using WasteClassifier.Components.Models;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Components.Classifying;

/// <summary>
/// Records this worker's presence every <c>Worker:HeartbeatSeconds</c> (one upsert, on its own timer, never on a batch's
/// path), so an idle worker shows as up in <c>GET /v1/workers</c>; marks it stopped on a graceful shutdown; and now and
/// then deletes rows not seen for <c>Worker:HeartbeatRetentionHours</c>. A failed beat is logged and tried again at the
/// next interval: presence must never stop a worker from classifying.
/// </summary>
public sealed class WorkerHeartbeatService(IServiceScopeFactory scopes, WorkerOptions options, IModelProvider model, TimeProvider clock,
    ILogger<WorkerHeartbeatService> logger) : BackgroundService
{
    private static readonly TimeSpan SweepInterval = TimeSpan.FromHours(1);

    /// <summary>The mark of a graceful stop is given this long at most, so a database outage does not hold up the shutdown.</summary>
    private static readonly TimeSpan StopMarkTimeout = TimeSpan.FromSeconds(5);

    private static readonly DateTime ProcessStartedAt = ReadProcessStart();

    private long? _lastSweep;
    private bool _beaten;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = TimeSpan.FromSeconds(options.HeartbeatSeconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await BeatAsync(stoppingToken);
                if (_lastSweep is not { } swept || clock.GetElapsedTime(swept) >= SweepInterval)
                {
                    _lastSweep = clock.GetTimestamp();
                    await SweepAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning("Recording worker {WorkerId}'s heartbeat failed: {Reason}", options.Id, e.Message);
            }
            try
            {
                await Task.Delay(interval, clock, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One beat: this worker's id, host, start, loaded model and interval, at the database's now.</summary>
    public async Task BeatAsync(CancellationToken cancellationToken)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        await WorkerPresence.BeatAsync(db, new WorkerHeartbeat
        {
            WorkerId = options.Id,
            HostName = Environment.MachineName,
            ProcessStartedAt = ProcessStartedAt,
            ModelVersion = model.LoadedCard?.Version,
            HeartbeatSeconds = options.HeartbeatSeconds,
        }, cancellationToken);
        _beaten = true;
    }

    private async Task SweepAsync(CancellationToken cancellationToken)
    {
        using var scope = scopes.CreateScope();
        var deleted = await WorkerPresence.SweepAsync(scope.ServiceProvider.GetRequiredService<ClassifierDbContext>(),
            TimeSpan.FromHours(options.HeartbeatRetentionHours), cancellationToken);
        if (deleted > 0) logger.LogInformation("Deleted the heartbeats of {Count} worker(s) not seen for {Hours} h", deleted, options.HeartbeatRetentionHours);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        // Nothing to mark when no beat was ever recorded (the database was down from the start).
        if (!_beaten) return;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StopMarkTimeout);
        try
        {
            using var scope = scopes.CreateScope();
            await WorkerPresence.StopAsync(scope.ServiceProvider.GetRequiredService<ClassifierDbContext>(), options.Id, timeout.Token);
        }
        catch (Exception e)
        {
            // Then it shows as missing after 3 intervals instead of stopped at once.
            logger.LogWarning("Marking worker {WorkerId} stopped failed: {Reason}", options.Id, e.Message);
        }
    }

    private static DateTime ReadProcessStart()
    {
        using var process = Process.GetCurrentProcess();
        return process.StartTime.ToUniversalTime();
    }
}
