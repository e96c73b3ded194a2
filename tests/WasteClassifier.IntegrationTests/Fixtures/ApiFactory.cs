using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>The real API process, in memory, configured by the given settings (which win over appsettings.json).</summary>
public sealed class ApiFactory(IReadOnlyDictionary<string, string?> settings) : WebApplicationFactory<WasteClassifier.Api.ApiEntryPoint>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (key, value) in settings) builder.UseSetting(key, value);
        builder.UseEnvironment("Development");
    }
}
