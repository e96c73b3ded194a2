using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Components;

/// <summary>The versions a worker keeps in its model cache ({DataDirectory}/model-cache) as models are promoted.</summary>
public sealed class ModelCacheTests : IDisposable
{
    private readonly InMemoryDatabase _database = new();
    private readonly MemoryObjectStore _store = new();
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("wc-model-cache-");
    private readonly ServiceProvider _services;
    private readonly RegistryModelProvider _provider;

    public ModelCacheTests()
    {
        _services = ModelRegistryHarness.Services(_database, _store);
        _provider = ModelRegistryHarness.Provider(_services, _data.FullName, TimeProvider.System);
    }

    [Fact]
    public async Task Refresh_ThreeVersionsPromotedInTurn_OnlyTheServedAndThePreviousOneStayCached()
    {
        var cache = Path.Combine(_data.FullName, "model-cache");
        // Perhaps another process's download in progress: not a version to remove.
        var staging = Directory.CreateDirectory(Path.Combine(cache, "v4.partial-0123456789abcdef0123456789abcdef"));
        await PromoteAsync("v1");
        Assert.True(await _provider.RefreshAsync(CancellationToken.None));
        // A batch holds v1 through both swaps: its session does not read the cache after its load.
        using var lease = await _provider.AcquireAsync(CancellationToken.None);
        foreach (var version in new[] { "v2", "v3" })
        {
            await PromoteAsync(version);
            Assert.True(await _provider.RefreshAsync(CancellationToken.None));
        }

        Assert.Equal(("v1", 2), (lease.Classifier.Card.Version, lease.Classifier.Classify(new float[12], 1)[0].Length));
        Assert.Equal(["v2", "v3", staging.Name], Directory.EnumerateDirectories(cache).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    private Task PromoteAsync(string version) => TinyModels.PromoteAsync(_database.Context, _store, version);

    public void Dispose()
    {
        _provider.Dispose();
        _services.Dispose();
        _database.Dispose();
        _data.Delete(recursive: true);
    }
}
