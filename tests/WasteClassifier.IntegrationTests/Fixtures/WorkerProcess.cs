using WasteClassifier.Components;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Worker;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>A worker host built exactly as src/WasteClassifier.Worker builds it, with its own bus connection and worker id.</summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly IHost _host;

    private WorkerProcess(IHost host) => _host = host;

    public static async Task<WorkerProcess> StartAsync(IReadOnlyDictionary<string, string?> settings)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Development", DisableDefaults = false });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.AddFilter("Microsoft.EntityFrameworkCore", LogLevel.Warning);
        builder.Services.AddClassifierWorkerHost(builder.Configuration);
        var host = builder.Build();
        await host.Services.PrepareServiceAsync();
        await host.StartAsync();
        return new WorkerProcess(host);
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync(TimeSpan.FromSeconds(10));
        _host.Dispose();
    }
}
