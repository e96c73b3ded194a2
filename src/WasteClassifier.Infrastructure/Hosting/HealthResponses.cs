using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;

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

    public static ReportView View(HealthReport report) => new(StatusName(report.Status), report.Entries.ToDictionary(
        e => e.Key, e => new CheckView(StatusName(e.Value.Status), e.Value.Description, Math.Round(e.Value.Duration.TotalMilliseconds, 1))));

    /// <summary>A <see cref="Microsoft.AspNetCore.Diagnostics.HealthChecks.HealthCheckOptions.ResponseWriter"/>.</summary>
    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.Headers.CacheControl = "no-store";
        return context.Response.WriteAsJsonAsync(View(report), Json, context.RequestAborted);
    }
}
