using Microsoft.Extensions.Logging;
using WasteClassifier.Infrastructure.Hosting;

namespace WasteClassifier.Components.Observability;

/// <summary>How often a readiness check's same failure is logged again (<see cref="ReadinessFailureLog{T}"/>).</summary>
public static class ReadinessFailureLog
{
    /// <summary>As the heartbeat's and the broker's TLS refusals: probes every 5 to 10 s leave one line per reason in 30 to 60.</summary>
    public static readonly TimeSpan RepeatInterval = TimeSpan.FromMinutes(5);
}

/// <summary>
/// The log of one component's readiness check (<typeparamref name="T"/>): probes run it every few seconds, so an outage of an
/// hour logged every failure with its stack hundreds of times. Each reason (the check's description, in fixed words) is
/// logged once per <see cref="ReadinessFailureLog.RepeatInterval"/> (<see cref="RepeatedFailureLog"/>), the first time with
/// the exception, later with how many went unlogged; one Information line says when the check passes again. One per process
/// (a singleton, registered with the check): the check itself is created for each run, in a scope with its DbContext, and
/// <see cref="TimeLimitedHealthCheck{T}"/> logs its time limit here too.
/// </summary>
public sealed class ReadinessFailureLog<T>(string component, ILogger<T>? logger = null, TimeProvider? clock = null)
{
    private readonly RepeatedFailureLog _failures = new(ReadinessFailureLog.RepeatInterval, clock);

    public void Failed(string reason, Exception? exception = null)
    {
        if (!_failures.Failed(reason, out var unlogged, out var since)) return;
        if (unlogged > 0)
            logger?.LogWarning("Readiness: the {Component} check failed: {Reason} (failed {Unlogged} more time(s) for this reason, unlogged, in the {Minutes:0} minutes since it was last logged)",
                component, reason, unlogged, since.TotalMinutes);
        else
            logger?.LogWarning(exception, "Readiness: the {Component} check failed: {Reason}", component, reason);
    }

    /// <summary>The check passed: logged once when it had failed, and the next failure is logged whatever its reason.</summary>
    public void Succeeded()
    {
        if (_failures.Succeeded()) logger?.LogInformation("Readiness: the {Component} check passes again", component);
    }
}
