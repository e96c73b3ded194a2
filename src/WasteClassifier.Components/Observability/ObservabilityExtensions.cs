using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Prometheus;

namespace WasteClassifier.Components.Observability;

public static class ObservabilityExtensions
{
    public const string ReadyTag = "ready";
    public const string PrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>Readiness checks of every process: database, object store and (where this process classifies) the model. MassTransit adds the broker's.</summary>
    public static IHealthChecksBuilder AddClassifierHealthChecks(this IServiceCollection services) =>
        services.AddHealthChecks()
            .AddCheck<DatabaseHealthCheck>("database", tags: [ReadyTag])
            .AddCheck<ObjectStoreHealthCheck>("object_store", tags: [ReadyTag])
            .AddCheck<ModelHealthCheck>("model", tags: [ReadyTag]);

    /// <summary>
    /// Serves <c>/metrics</c>, <c>/health/live</c> and <c>/health/ready</c> on a small Kestrel listener inside a generic host
    /// (worker, trainer) when <c>Metrics:Port</c> (or <paramref name="defaultPort"/>) is above 0.
    /// </summary>
    public static IServiceCollection AddObservabilityListener(this IServiceCollection services, IConfiguration configuration, int defaultPort = 0)
    {
        var options = new ObservabilityListenerOptions(configuration.GetValue("Metrics:Port", defaultPort), configuration["Metrics:Host"]);
        if (options.Port <= 0) return services;
        services.AddSingleton(options);
        services.AddHostedService<ObservabilityListener>();
        return services;
    }

    /// <summary>The probes and the Prometheus endpoint, answered from <paramref name="services"/> (the host's own container).</summary>
    public static void MapObservabilityEndpoints(this IEndpointRouteBuilder app, IServiceProvider services, Func<HttpContext, Task>? beforeScrape = null)
    {
        app.MapGet("/health/live", () => TypedResults.Text("Healthy")).ExcludeFromDescription();
        app.MapGet("/health/ready", (HttpContext context) => ReadyAsync(services, context)).ExcludeFromDescription();
        app.MapPrometheusMetrics(beforeScrape);
    }

    /// <summary><c>/metrics</c> in Prometheus text format; <paramref name="beforeScrape"/> refreshes gauges read from elsewhere (e.g. the database).</summary>
    public static IEndpointConventionBuilder MapPrometheusMetrics(this IEndpointRouteBuilder app, Func<HttpContext, Task>? beforeScrape = null) =>
        app.MapGet("/metrics", async (HttpContext context) =>
        {
            if (beforeScrape is not null) await beforeScrape(context);
            context.Response.ContentType = PrometheusContentType;
            await Metrics.DefaultRegistry.CollectAndExportAsTextAsync(context.Response.Body, context.RequestAborted);
        }).ExcludeFromDescription();

    /// <summary>
    /// 200 when every ready-tagged check is healthy or degraded (still working: a worker serving the model it had), else
    /// 503, as the API's probe answers; the body names each check's status.
    /// </summary>
    private static async Task ReadyAsync(IServiceProvider services, HttpContext context)
    {
        var report = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync(c => c.Tags.Contains(ReadyTag), context.RequestAborted);
        context.Response.StatusCode = report.Status == HealthStatus.Unhealthy ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status200OK;
        await context.Response.WriteAsJsonAsync(new Dictionary<string, object>
        {
            ["status"] = report.Status.ToString().ToLowerInvariant(),
            ["checks"] = report.Entries.ToDictionary(e => e.Key, e => e.Value.Status.ToString().ToLowerInvariant()),
        }, JsonSerializerOptions.Web, context.RequestAborted);
    }
}
