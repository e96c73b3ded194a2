using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Observability;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Components;

/// <summary>
/// A worker that cannot load the model the registry made active keeps serving the one it had: its health says so
/// (degraded, naming both versions) until it serves the registry's active version again.
/// </summary>
public sealed class ModelHealthCheckTests : IDisposable
{
    private readonly InMemoryDatabase _database = new();
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("wc-health-model-");
    private readonly ServiceProvider _services;
    private readonly RegistryModelProvider _provider;

    public ModelHealthCheckTests()
    {
        _services = ModelRegistryHarness.Services(_database, new MemoryObjectStore());
        _provider = new RegistryModelProvider(_services.GetRequiredService<IServiceScopeFactory>(), new ModelOptions(),
            new ServiceOptions { DataDirectory = _data.FullName }, TimeProvider.System, NullLogger<RegistryModelProvider>.Instance);
    }

    [Fact]
    public async Task Model_PromotedVersionFailsToLoad_DegradedNamingBothVersionsUntilTheServedOneIsActiveAgain()
    {
        _provider.UseForTests(new SharedModel(new CardOnlyClassifier("v1")));
        await _database.AddModelAsync("v1", ModelStatus.Retired);
        // Promoted, but its files are not in the object store.
        await _database.AddModelAsync("v2", ModelStatus.Active);

        await Assert.ThrowsAsync<FileNotFoundException>(() => _provider.RefreshAsync(CancellationToken.None));
        var degraded = await CheckAsync();

        Assert.Equal(HealthStatus.Degraded, degraded.Status);
        Assert.Contains("serving v1", degraded.Description);
        Assert.Contains("v2", degraded.Description);
        Assert.Equal(("v1", "v2"), (degraded.Data["loaded_version"], degraded.Data["active_version"]));

        // An operator rolls back to the version the worker serves.
        await SetStatusAsync("v2", ModelStatus.Retired);
        await SetStatusAsync("v1", ModelStatus.Active);
        Assert.False(await _provider.RefreshAsync(CancellationToken.None));
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync()).Status);
    }

    private Task<HealthCheckResult> CheckAsync()
    {
        var services = new ServiceCollection().AddSingleton<IModelProvider>(_provider).BuildServiceProvider();
        return new ModelHealthCheck(services).CheckHealthAsync(new HealthCheckContext());
    }


    private async Task SetStatusAsync(string version, string status)
    {
        var model = _database.Context.Models.Single(m => m.Version == version);
        model.Status = status;
        model.PromotedAt = DateTime.UtcNow;
        await _database.Context.SaveChangesAsync();
    }

    private sealed class CardOnlyClassifier(string version) : IImageClassifier
    {
        public ModelCard Card { get; } = new() { Version = version, Labels = ["a", "b"], Onnx = "model.onnx", Input = new ModelInputSpec() };

        public float[][] Classify(ReadOnlyMemory<float> batch, int count) => throw new NotSupportedException();

        public void Dispose()
        {
        }
    }

    public void Dispose()
    {
        _provider.Dispose();
        _services.Dispose();
        _database.Dispose();
        _data.Delete(recursive: true);
    }
}
