using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace WasteClassifier.Infrastructure.Hosting;

/// <summary>
/// The health probes' body, the same in the API, the worker and the trainer:
/// <c>{"status": "healthy|degraded|unhealthy", "checks": {"database": {"status", "description", "duration_ms"}}}</c>.
/// The status code is the caller's (200 or 503). A check's exception is never written: its description is.
/// </summary>
public static class HealthResponses
{
    public sealed record CheckView(string Status, string? Description, double DurationMs);

    public sealed record ReportView(string Status, IReadOnlyDictionary<string, CheckView> Checks);

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static string StatusName(HealthStatus status) => status switch
    {
        HealthStatus.Healthy => "healthy",
        HealthStatus.Degraded => "degraded",
        _ => "unhealthy",
    };

    public static ReportView View(HealthReport report, ILogger? logger = null) => new(StatusName(report.Status), report.Entries.ToDictionary(
        e => e.Key, e => new CheckView(StatusName(e.Value.Status), Description(e.Key, e.Value, logger), Math.Round(e.Value.Duration.TotalMilliseconds, 1))));

    /// <summary>MassTransit's bus check, whose description is its own text (endpoint addresses, exception messages).</summary>
    public static bool IsBroker(string check) => check.Contains("masstransit", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// A check's description as answered: ours are fixed words already; the broker's is replaced by fixed words for its
    /// status, its own text logged at Warning when it is not healthy.
    /// </summary>
    public static string? Description(string check, HealthReportEntry entry, ILogger? logger)
    {
        if (!IsBroker(check)) return entry.Description;
        if (entry.Status != HealthStatus.Healthy)
            logger?.LogWarning("Health: the broker check {Check} is {Status}: {Description}", check, entry.Status, entry.Description);
        return entry.Status switch
        {
            HealthStatus.Healthy => "connected",
            HealthStatus.Degraded => "connected, a receive endpoint is not ready",
            _ => "not connected",
        };
    }

    /// <summary>A <see cref="Microsoft.AspNetCore.Diagnostics.HealthChecks.HealthCheckOptions.ResponseWriter"/>.</summary>
    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.Headers.CacheControl = "no-store";
        var logger = context.RequestServices?.GetService<ILoggerFactory>()?.CreateLogger(typeof(HealthResponses).FullName!);
        return context.Response.WriteAsJsonAsync(View(report, logger), Json, context.RequestAborted);
    }
}
