using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using WasteClassifier.Components.Models;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Components.Classifying;

/// <summary>
/// Records this worker's presence every <c>Worker:HeartbeatSeconds</c> (one upsert, on its own timer, never on a batch's
/// path), so an idle worker shows as up in <c>GET /v1/workers</c>; and marks it stopped on a graceful shutdown (old rows are
/// <see cref="WorkerHeartbeatSweeper"/>'s). A failed beat is tried again at the next interval
/// (presence must never stop a worker from classifying) and logged when its reason changes, the same reason again at most
/// every <see cref="RepeatLogInterval"/>.
/// </summary>
public sealed class WorkerHeartbeatService(IServiceScopeFactory scopes, WorkerOptions options, IModelProvider model, TimeProvider clock,
    ILogger<WorkerHeartbeatService> logger) : BackgroundService
{
    /// <summary>The mark of a graceful stop is given this long at most, so a database outage does not hold up the shutdown.</summary>
    private static readonly TimeSpan StopMarkTimeout = TimeSpan.FromSeconds(5);

    /// <summary>A beat failing for the same reason is logged again after this long, not at every interval of an outage.</summary>
    public static readonly TimeSpan RepeatLogInterval = TimeSpan.FromMinutes(5);

    private static readonly DateTime ProcessStartedAt = ReadProcessStart();

    // Held by a beat's write and by the stop mark, so a beat still in flight when stopping begins cannot clear the mark.
    private readonly SemaphoreSlim _write = new(1, 1);
    private volatile bool _stopping;
    private bool _beaten;
    private readonly RepeatedFailureLog _failures = new(RepeatLogInterval, clock);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = TimeSpan.FromSeconds(options.HeartbeatSeconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                // A beat skipped because stopping began wrote nothing: not "works again".
                if (await BeatAsync(stoppingToken)) BeatRecorded();
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                BeatFailed(e);
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
    /// <remarks>Once stopping has begun it writes nothing (and answers false): a beat after the stop mark would clear it.</remarks>
    public async Task<bool> BeatAsync(CancellationToken cancellationToken)
    {
        if (_stopping) return false;
        await _write.WaitAsync(cancellationToken);
        try
        {
            if (_stopping) return false;
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
            return true;
        }
        finally
        {
            _write.Release();
        }
    }

    /// <summary>Logs a failed beat when its reason changes, the same reason again once <see cref="RepeatLogInterval"/> has passed.</summary>
    internal void BeatFailed(Exception e)
    {
        var reason = ExceptionReasons.LogReason(e);
        if (!_failures.Failed(reason, out var unlogged, out _)) return;
        if (unlogged > 0)
            logger.LogWarning("Recording worker {WorkerId}'s heartbeat failed: {Reason} (failed {Unlogged} more time(s) for this reason, unlogged, since it was last logged)",
                options.Id, reason, unlogged);
        else
            // The whole exception with the first warning of a reason; the repeats of the same say only how many there were.
            logger.LogWarning(e, "Recording worker {WorkerId}'s heartbeat failed: {Reason}", options.Id, reason);
    }

    /// <summary>A beat recorded after failures says so once; the next failure is logged whatever its reason.</summary>
    internal void BeatRecorded()
    {
        if (_failures.Succeeded()) logger.LogInformation("Recording worker {WorkerId}'s heartbeat works again", options.Id);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        await base.StopAsync(cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StopMarkTimeout);
        try
        {
            // Waits for a beat still in flight (the shutdown's timeout can end base.StopAsync first), so the mark comes after it.
            await _write.WaitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            // Then it shows as missing after 3 intervals instead of stopped at once.
            logger.LogWarning("Marking worker {WorkerId} stopped skipped: a heartbeat was still being recorded or the shutdown's time ran out", options.Id);
            return;
        }
        try
        {
            // Nothing to mark when no beat was ever recorded (the database was down from the start).
            if (!_beaten) return;
            using var scope = scopes.CreateScope();
            await WorkerPresence.StopAsync(scope.ServiceProvider.GetRequiredService<ClassifierDbContext>(), options.Id, timeout.Token);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Marking worker {WorkerId} stopped failed: {Reason}", options.Id, ExceptionReasons.LogReason(e));
        }
        finally
        {
            // Beats after this see _stopping and write nothing.
            _write.Release();
        }
    }

    private static DateTime ReadProcessStart()
    {
        using var process = Process.GetCurrentProcess();
        return process.StartTime.ToUniversalTime();
    }
}
