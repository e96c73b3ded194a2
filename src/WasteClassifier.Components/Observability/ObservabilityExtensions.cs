using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Prometheus;
using WasteClassifier.Infrastructure.Hosting;

namespace WasteClassifier.Components.Observability;

public static class ObservabilityExtensions
{
    public const string ReadyTag = "ready";

    /// <summary>The database check (<see cref="DatabaseHealthCheck"/>).</summary>
    public const string DatabaseCheck = "database";

    /// <summary>The model check: the one ready check whose degraded status still counts as ready.</summary>
    public const string ModelCheck = "model";
    public const string PrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>The object store's check (<see cref="ObjectStoreHealthCheck"/>).</summary>
    public const string ObjectStoreCheck = "object_store";

    /// <summary>
    /// Readiness checks of every process: database, object store and (where this process classifies) the model. MassTransit
    /// adds the broker's. The database's and the object store's each run within <see cref="HealthOptions.CheckTimeoutSeconds"/>
    /// (<see cref="TimeLimitedHealthCheck{T}"/>); the model's and the broker's read this process's own state, and answer at once.
    /// </summary>
    public static IHealthChecksBuilder AddClassifierHealthChecks(this IServiceCollection services, IConfiguration configuration)
    {
        var options = HealthOptions.From(configuration);
        services.AddSingleton(options);
        return services.AddHealthChecks()
            .AddTimeLimited<DatabaseHealthCheck>(DatabaseCheck, "database", options)
            .AddTimeLimited<ObjectStoreHealthCheck>(ObjectStoreCheck, "object store", options)
            .AddCheck<ModelHealthCheck>(ModelCheck, tags: [ReadyTag]);
    }

    private static IHealthChecksBuilder AddTimeLimited<T>(this IHealthChecksBuilder builder, string name, string component, HealthOptions options)
        where T : class, IHealthCheck
    {
        // One per process, not one per run (the registration's factory runs at every check): it holds the check in flight.
        // The log too: the check, created in each run's scope, takes it from there and so remembers what it last logged.
        builder.Services.AddSingleton(services => new ReadinessFailureLog<T>(component, services.GetService<Microsoft.Extensions.Logging.ILogger<T>>(),
            services.GetService<TimeProvider>()));
        builder.Services.AddSingleton(services => new TimeLimitedHealthCheck<T>(services.GetRequiredService<IServiceScopeFactory>(), options, component,
            services.GetRequiredService<ReadinessFailureLog<T>>(), services.GetService<Microsoft.Extensions.Logging.ILogger<T>>()));
        return builder.Add(new HealthCheckRegistration(name, services => services.GetRequiredService<TimeLimitedHealthCheck<T>>(), failureStatus: null, tags: [ReadyTag]));
    }

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

    /// <summary>
    /// Has this host export one role's families (<see cref="ClassifierMetrics.ApiRegistry"/>, <see cref="ClassifierMetrics.WorkerRegistry"/>,
    /// <see cref="ClassifierMetrics.TrainingRegistry"/>) on <c>/metrics</c>: added by the services that record them.
    /// </summary>
    public static IServiceCollection AddExportedMetrics(this IServiceCollection services, CollectorRegistry registry) =>
        services.AddSingleton(new ExportedMetrics(registry));

    /// <summary>The probes and the Prometheus endpoint, answered from <paramref name="services"/> (the host's own container).</summary>
    public static void MapObservabilityEndpoints(this IEndpointRouteBuilder app, IServiceProvider services, Func<HttpContext, Task>? beforeScrape = null)
    {
        app.MapGet("/health/live", (HttpContext context) => HealthResponses.WriteAsync(context, new HealthReport(new Dictionary<string, HealthReportEntry>(), TimeSpan.Zero)))
            .ExcludeFromDescription();
        app.MapGet("/health/ready", (HttpContext context) => ReadyAsync(services, context)).ExcludeFromDescription();
        app.MapPrometheusMetrics(services, beforeScrape);
    }

    /// <summary>
    /// <c>/metrics</c> in Prometheus text format: the process and runtime metrics (the default registry) and the families of
    /// the roles <paramref name="services"/> runs (<see cref="AddExportedMetrics"/>); <paramref name="beforeScrape"/>
    /// refreshes gauges read from elsewhere (e.g. the database).
    /// </summary>
    public static IEndpointConventionBuilder MapPrometheusMetrics(this IEndpointRouteBuilder app, IServiceProvider services, Func<HttpContext, Task>? beforeScrape = null)
    {
        // Distinct: the API and an in-process trainer both add the training registry.
        CollectorRegistry[] registries = [Metrics.DefaultRegistry, .. services.GetServices<ExportedMetrics>().Select(e => e.Registry).Distinct()];
        return app.MapGet("/metrics", async (HttpContext context) =>
        {
            if (beforeScrape is not null) await beforeScrape(context);
            context.Response.ContentType = PrometheusContentType;
            // The text format is one family after another, so the registries' outputs simply follow each other.
            foreach (var registry in registries) await registry.CollectAndExportAsTextAsync(context.Response.Body, context.RequestAborted);
        }).ExcludeFromDescription();
    }

    /// <summary>
    /// 200 when every ready-tagged check is healthy, the model check being allowed degraded (still working: a worker serving
    /// the model it had), else 503; the body (<see cref="HealthResponses"/>) names each check's status and description. Any
    /// other check degraded is not ready: MassTransit's bus check is degraded while some receive endpoints are faulted, the
    /// classify endpoint of a worker among them. This listener is the only HTTP a worker serves, so it is where a degraded
    /// model (which versions) or a failing check's reason can be read.
    /// </summary>
    private static async Task ReadyAsync(IServiceProvider services, HttpContext context)
    {
        var report = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync(c => c.Tags.Contains(ReadyTag), context.RequestAborted);
        var ready = report.Entries.All(e => e.Value.Status == HealthStatus.Healthy || (e.Value.Status == HealthStatus.Degraded && e.Key == ModelCheck));
        context.Response.StatusCode = ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        await HealthResponses.WriteAsync(context, report);
    }
}

/// <summary>A registry of metric families this host produces, and so exports (<see cref="ObservabilityExtensions.AddExportedMetrics"/>).</summary>
public sealed record ExportedMetrics(CollectorRegistry Registry);
