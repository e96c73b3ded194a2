using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace WasteClassifier.Components.Observability;

public sealed record ObservabilityListenerOptions(int Port, string? Host);

/// <summary>
/// A Kestrel listener beside a generic host (worker, trainer): probes and metrics for Compose, Kubernetes and Prometheus.
/// It answers health from the host's own container, so readiness sees the host's bus, database, store and model.
/// </summary>
public sealed class ObservabilityListener(ObservabilityListenerOptions options, IServiceProvider services, ILogger<ObservabilityListener> logger) : IHostedService, IAsyncDisposable
{
    private WebApplication? _app;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel =>
        {
            // Any address by default: probes and scrapes come from outside the container.
            if (options.Host is { Length: > 0 } host && host != "*") kestrel.Listen(IPAddress.Parse(host), options.Port);
            else kestrel.ListenAnyIP(options.Port);
        });
        _app = builder.Build();
        _app.MapObservabilityEndpoints(services);
        await _app.StartAsync(cancellationToken);
        logger.LogInformation("Metrics and health on port {Port}: /metrics, /health/live, /health/ready", options.Port);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null) await _app.StopAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
    }
}
