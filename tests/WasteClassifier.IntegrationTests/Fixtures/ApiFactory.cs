using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>The real API process, in memory, configured by the given settings (which win over appsettings.json).</summary>
public sealed class ApiFactory(IReadOnlyDictionary<string, string?> settings) : WebApplicationFactory<WasteClassifier.Api.ApiEntryPoint>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        // POST /predict answers 504 after its timeout (30 s by default): on a machine shared by parallel test classes a
        // test's image can wait longer than that. A test that measures the timeout sets its own.
        builder.UseSetting("Uploads:PredictTimeoutSeconds", "120");
        foreach (var (key, value) in settings) builder.UseSetting(key, value);
        builder.UseEnvironment("Development");
    }
}
