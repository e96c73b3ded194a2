using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using WasteClassifier.Components;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Observability;
using WasteClassifier.Trainer;
using WasteClassifier.Worker;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>A worker or trainer host built exactly as its Program builds it, with its own bus connection and settings.</summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly IHost _host;

    private ServiceProcess(IHost host) => _host = host;

    /// <summary>The host's services, e.g. its bus to observe what it consumes.</summary>
    public IServiceProvider Services => _host.Services;

    public static Task<ServiceProcess> StartWorkerAsync(IReadOnlyDictionary<string, string?> settings) =>
        StartAsync(settings, (services, configuration) => services.AddClassifierWorkerHost(configuration));

    public static Task<ServiceProcess> StartTrainerAsync(IReadOnlyDictionary<string, string?> settings) =>
        StartAsync(settings, (services, configuration) => services.AddClassifierTrainerHost(configuration));

    private static async Task<ServiceProcess> StartAsync(IReadOnlyDictionary<string, string?> settings, Action<IServiceCollection, IConfiguration> addHost)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Development", DisableDefaults = false });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.AddFilter("Microsoft.EntityFrameworkCore", LogLevel.Warning);
        addHost(builder.Services, builder.Configuration);
        // As its Program adds it; off unless the settings give Metrics:Port.
        builder.Services.AddObservabilityListener(builder.Configuration, defaultPort: 0);
        var host = builder.Build();
        try
        {
            await host.Services.PrepareServiceAsync();
            await host.StartAsync();
            // MassTransit starts the bus in the background: wait until this process consumes, or a test's messages can all go
            // to the processes that started first.
            var bus = await host.Services.GetRequiredService<IBusControl>().WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(60));
            if (bus != BusHealthStatus.Healthy) throw new InvalidOperationException($"the service's bus is {bus} after 60 s");
            return new ServiceProcess(host);
        }
        catch
        {
            // Whatever failed, what the host started stops: its background services would otherwise run on in the test
            // process, consuming the next tests' messages.
            await StopAndDisposeAsync(host);
            throw;
        }
    }

    /// <summary>
    /// Waits until this worker has loaded its model (its watcher loads it in the background at start), up to
    /// <see cref="ClassifierClient.ModelLoadPatience"/>: a test that bounds what the worker does next times that, not the load.
    /// </summary>
    public async Task WaitForModelAsync()
    {
        var model = _host.Services.GetRequiredService<IModelProvider>();
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (model.LoadedCard is null)
        {
            if (waited.Elapsed > ClassifierClient.ModelLoadPatience)
                throw new TimeoutException($"the worker did not load its model within {ClassifierClient.ModelLoadPatience}");
            await Task.Delay(200);
        }
    }

    /// <summary>Stops and disposes a host whose start failed; a failure to stop is not thrown in place of the start's.</summary>
    private static async Task StopAndDisposeAsync(IHost host)
    {
        try
        {
            await host.StopAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception)
        {
            // The start's failure is the one the test reports.
        }
        finally
        {
            host.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync(TimeSpan.FromSeconds(10));
        _host.Dispose();
    }
}
