using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace WasteClassifier.Components.Observability;

/// <summary>
/// Runs the check <typeparamref name="T"/> within <see cref="HealthOptions.CheckTimeoutSeconds"/>; past it the component is
/// unhealthy, "the {component} did not answer within N s". A server that accepts connections and never answers (a host
/// that drops packets, a stalled S3 server) held the check for its driver's own timeout (Npgsql's 15 s connect or 30 s
/// command, the S3 client's 30 s), and every probe's answer with it, past the probes' 5 s.
/// </summary>
/// <remarks>
/// The check is not cancelled, neither at the limit nor with the request (whose token only ends that request's wait): Npgsql,
/// cancelled mid-query, sends the server a cancel request, connecting synchronously inside <c>Cancel()</c> into the same
/// silence, and a limit on the same token waited 30 s for that. The check ends instead on its driver's own timeouts, in a
/// scope of its own that is disposed then, not when the answer is written: its DbContext is never disposed under a command
/// still running. One instance per process (a singleton) runs at most one check at a time: a call while one runs waits on
/// that one within its own limit, so probes and clients polling a silent server hold one pooled connection, not one per call.
/// </remarks>
public sealed class TimeLimitedHealthCheck<T>(IServiceScopeFactory scopes, HealthOptions options, string component,
    ReadinessFailureLog<T>? log = null, ILogger<T>? logger = null) : IHealthCheck
    where T : IHealthCheck
{
    private readonly Lock _gate = new();
    private Task<HealthCheckResult>? _running;

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var check = Running(context);
        if (await Task.WhenAny(check, Task.Delay(options.CheckTimeout, cancellationToken)) == check) return await check;
        cancellationToken.ThrowIfCancellationRequested();
        var description = $"the {component} did not answer within {options.CheckTimeoutText} s";
        // Every probe of a silent server gets here: logged as the check's own failures, once per interval.
        log?.Failed(description);
        return HealthCheckResult.Unhealthy(description);
    }

    /// <summary>The check in flight, or a new one when none is (the last one ended).</summary>
    private Task<HealthCheckResult> Running(HealthCheckContext context)
    {
        lock (_gate)
        {
            if (_running is { IsCompleted: false } running) return running;
            // On the thread pool: a check that blocks before its first await (SQLite's calls are synchronous) is timed too.
            var check = Task.Run(() => RunAsync(context), CancellationToken.None);
            // A check that fails after every caller stopped waiting is observed (no unobserved task exception) and logged once.
            _ = check.ContinueWith(failed => logger?.LogDebug(failed.Exception, "Readiness: the {Component} check failed", component),
                CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            return _running = check;
        }
    }

    private async Task<HealthCheckResult> RunAsync(HealthCheckContext context)
    {
        await using var scope = scopes.CreateAsyncScope();
        return await ActivatorUtilities.GetServiceOrCreateInstance<T>(scope.ServiceProvider).CheckHealthAsync(context, CancellationToken.None);
    }
}
