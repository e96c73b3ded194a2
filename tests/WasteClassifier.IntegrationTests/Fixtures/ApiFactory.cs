using MassTransit;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>The real API process, in memory, configured by the given settings (which win over appsettings.json).</summary>
/// <param name="services">Registers more services (e.g. an IStartupFilter), where a derived factory would not do: one from
/// WithWebHostBuilder keeps the in-memory address after UseKestrel.</param>
public sealed class ApiFactory(IReadOnlyDictionary<string, string?> settings, Action<IServiceCollection>? services = null)
    : WebApplicationFactory<WasteClassifier.Api.ApiEntryPoint>
{
    private IHost? _host;

    protected override IHost CreateHost(IHostBuilder builder) => _host = base.CreateHost(builder);

    /// <summary>
    /// MassTransit starts the bus in the background. Stopping it while its endpoints are still starting (a test that is
    /// over within milliseconds) can throw inside MassTransit (a NullReferenceException in ReceiveEndpoint.Stop, seen
    /// once in CI): let it finish starting first, for at most 10 s (a broker that is down never lets it).
    /// </summary>
    public override async ValueTask DisposeAsync()
    {
        if (_host?.Services.GetService<IBusControl>() is { } bus) await bus.WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(10));
        await base.DisposeAsync();
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        // POST /predict answers 504 after its timeout (30 s by default): on a machine shared by parallel test classes a
        // test's image can wait longer than that. A test that measures the timeout sets its own.
        builder.UseSetting("Uploads:PredictTimeoutSeconds", "120");
        // Tests read /stats right after their images finish: a replica's shared answer could be from before them.
        builder.UseSetting("Stats:CacheSeconds", "0");
        foreach (var (key, value) in settings) builder.UseSetting(key, value);
        if (services is not null) builder.ConfigureServices(services);
        builder.UseEnvironment("Development");
    }
}
