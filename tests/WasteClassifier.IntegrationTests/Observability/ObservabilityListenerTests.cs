using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using WasteClassifier.Components.Observability;

namespace WasteClassifier.IntegrationTests.Observability;

/// <summary>The worker's and trainer's small listener: probes and /metrics beside a generic host, answered from the host's own checks.</summary>
public sealed class ObservabilityListenerTests
{
    [Fact]
    public async Task Listener_OnConfiguredPort_ServesMetricsLivenessAndReadinessFromTheHostsChecks()
    {
        var port = FreePort();
        var healthy = true;
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Development" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Metrics:Port"] = port.ToString(), ["Metrics:Host"] = "127.0.0.1" });
        builder.Services.AddHealthChecks().AddCheck("broker", () => healthy ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy(), [ObservabilityExtensions.ReadyTag]);
        builder.Services.AddObservabilityListener(builder.Configuration, defaultPort: 0);
        builder.Services.AddExportedMetrics(ClassifierMetrics.WorkerRegistry);
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            ClassifierMetrics.BatchSize.Observe(4);
            var metrics = await http.GetAsync("/metrics");
            Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
            Assert.Contains("wasteclassifier_batch_size_bucket", await metrics.Content.ReadAsStringAsync());
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health/live")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health/ready")).StatusCode);

            healthy = false;
            var notReady = await http.GetAsync("/health/ready");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
            using var body = JsonDocument.Parse(await notReady.Content.ReadAsStringAsync());
            Assert.Equal("unhealthy", body.RootElement.GetProperty("checks").GetProperty("broker").GetProperty("status").GetString());
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health/live")).StatusCode);
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Fact]
    public async Task Listener_DegradedCheck_StaysReadyAndSaysDegraded()
    {
        // A worker still serving the model it had, because the promoted one would not load: working, not out of service.
        var (status, body) = await ReadinessAsync(checks => checks
            .AddCheck("model", () => HealthCheckResult.Degraded("serving v1, not the active model v2"), [ObservabilityExtensions.ReadyTag]));

        Assert.Equal(HttpStatusCode.OK, status);
        using var json = JsonDocument.Parse(body);
        Assert.Equal("degraded", json.RootElement.GetProperty("checks").GetProperty("model").GetProperty("status").GetString());
    }

    [Fact]
    public async Task Listener_DegradedModel_ReadinessNamesWhyInDetails()
    {
        // A worker serves no /health: its readiness answer is where an operator reads which versions a degraded model means.
        var (status, body) = await ReadinessAsync(checks => checks
            .AddCheck("model", () => HealthCheckResult.Degraded("serving v1, not the active model v2"), [ObservabilityExtensions.ReadyTag])
            .AddCheck("database", () => HealthCheckResult.Healthy(), [ObservabilityExtensions.ReadyTag]));

        Assert.Equal(HttpStatusCode.OK, status);
        using var json = JsonDocument.Parse(body);
        var checks = json.RootElement.GetProperty("checks");
        Assert.Equal("serving v1, not the active model v2", checks.GetProperty("model").GetProperty("description").GetString());
        Assert.Equal(JsonValueKind.Null, checks.GetProperty("database").GetProperty("description").ValueKind);
    }

    [Fact]
    public async Task Listener_OtherCheckDegraded_IsNotReady()
    {
        // MassTransit's bus check is degraded while a receive endpoint is faulted: a worker whose classify endpoint is
        // faulted classifies nothing, so it must not pass readiness, even while its model check is degraded too.
        var (status, body) = await ReadinessAsync(checks => checks
            .AddCheck("model", () => HealthCheckResult.Degraded("serving v1, not the active model v2"), [ObservabilityExtensions.ReadyTag])
            .AddCheck("masstransit-bus", () => HealthCheckResult.Degraded("faulted: classify-image"), [ObservabilityExtensions.ReadyTag]));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        using var json = JsonDocument.Parse(body);
        Assert.Equal("degraded", json.RootElement.GetProperty("checks").GetProperty("masstransit-bus").GetProperty("status").GetString());
    }

    /// <summary>What the listener's /health/ready answers for a host with these checks.</summary>
    private static async Task<(HttpStatusCode Status, string Body)> ReadinessAsync(Action<IHealthChecksBuilder> addChecks)
    {
        var port = FreePort();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Development" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Metrics:Port"] = port.ToString(), ["Metrics:Host"] = "127.0.0.1" });
        addChecks(builder.Services.AddHealthChecks());
        builder.Services.AddObservabilityListener(builder.Configuration, defaultPort: 0);
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var ready = await http.GetAsync("/health/ready");
            return (ready.StatusCode, await ready.Content.ReadAsStringAsync());
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Fact]
    public void AddObservabilityListener_PortZero_AddsNoListener()
    {
        var services = new ServiceCollection();
        services.AddObservabilityListener(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Metrics:Port"] = "0" }).Build(), defaultPort: 9091);
        Assert.DoesNotContain(services, s => s.ImplementationType == typeof(ObservabilityListener));
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
