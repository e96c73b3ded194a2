using System.Text.Json;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Components;

/// <summary>A worker's copy of a registered model in its cache folder: what a failed or abandoned download leaves there.</summary>
public sealed class ModelRegistryDownloadTests : IAsyncLifetime
{
    private readonly InMemoryDatabase _database = new();
    private readonly MemoryObjectStore _store = new();
    private readonly DirectoryInfo _cache = Directory.CreateTempSubdirectory("wc-model-cache-");
    private readonly ServiceProvider _bus = new ServiceCollection().AddPatientTestHarness().BuildServiceProvider(true);

    [Fact]
    public async Task Download_FileMissingFromTheStore_FailsAndLeavesNoStagingFolder()
    {
        var record = Record("v2");

        await Assert.ThrowsAsync<FileNotFoundException>(() => Registry().DownloadAsync(record, _cache.FullName, CancellationToken.None));

        Assert.Empty(_cache.EnumerateFileSystemInfos());
    }

    [Fact]
    public async Task Download_Cancelled_LeavesNoStagingFolder()
    {
        var record = Record("v2");
        await _store.PutAsync(record.ArtifactPrefix + "model.onnx", new byte[] { 1, 2, 3 }, "application/octet-stream", CancellationToken.None);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Registry().DownloadAsync(record, _cache.FullName, new CancellationToken(canceled: true)));

        Assert.Empty(_cache.EnumerateFileSystemInfos());
    }

    [Fact]
    public async Task Download_StagingFoldersLeftByEndedProcesses_OldOnesRemovedAndARecentOneKept()
    {
        var record = Record("v2");
        await _store.PutAsync(record.ArtifactPrefix + "model.onnx", new byte[] { 1, 2, 3 }, "application/octet-stream", CancellationToken.None);
        var abandoned = _cache.CreateSubdirectory("v1.partial-0123456789abcdef0123456789abcdef");
        File.WriteAllBytes(Path.Combine(abandoned.FullName, "model.onnx"), [1]);
        Directory.SetLastWriteTimeUtc(abandoned.FullName, DateTime.UtcNow.AddHours(-1));
        // Perhaps another process's download in progress.
        var recent = _cache.CreateSubdirectory("v2.partial-fedcba9876543210fedcba9876543210");

        var directory = await Registry().DownloadAsync(record, _cache.FullName, CancellationToken.None);

        Assert.Equal(new[] { recent.Name, "v2" }.Order(), _cache.EnumerateDirectories().Select(d => d.Name).Order());
        Assert.Equal(Path.Combine(_cache.FullName, "v2"), directory);
        Assert.Equal([ModelCard.FileName, "model.onnx"], Directory.EnumerateFiles(directory).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task Download_HostWhoseClockRunsAhead_LeavesAnotherHostsDownloadInProgressAlone()
    {
        // File times are the machine's: a host whose clock runs hours ahead must not take another host's download in
        // progress for abandoned.
        var record = Record("v2");
        await _store.PutAsync(record.ArtifactPrefix + "model.onnx", new byte[] { 1, 2, 3 }, "application/octet-stream", CancellationToken.None);
        var inProgress = _cache.CreateSubdirectory("v1.partial-0123456789abcdef0123456789abcdef");
        File.WriteAllBytes(Path.Combine(inProgress.FullName, "model.onnx"), [1]);
        var ahead = new ClockAhead(TimeSpan.FromHours(3));

        await Registry(ahead).DownloadAsync(record, _cache.FullName, CancellationToken.None);

        Assert.True(File.Exists(Path.Combine(inProgress.FullName, "model.onnx")));
    }

    [Fact]
    public async Task Download_CachedCopyLackingItsModelFile_IsDownloadedAgain()
    {
        var record = Record("v2");
        await _store.PutAsync(record.ArtifactPrefix + "model.onnx", new byte[] { 1, 2, 3 }, "application/octet-stream", CancellationToken.None);
        var broken = _cache.CreateSubdirectory("v2");
        File.WriteAllText(Path.Combine(broken.FullName, ModelCard.FileName), record.CardJson);

        var directory = await Registry().DownloadAsync(record, _cache.FullName, CancellationToken.None);

        Assert.Equal([1, 2, 3], File.ReadAllBytes(Path.Combine(directory, "model.onnx")));
        Assert.Equal(["v2"], _cache.EnumerateDirectories().Select(d => d.Name));
    }

    private sealed class ClockAhead(TimeSpan offset) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + offset;
    }

    private ModelRegistry Registry(TimeProvider? clock = null) =>
        new(_database.Context, _store, _bus.GetRequiredService<IBus>(), new ModelOptions(), clock ?? TimeProvider.System, NullLogger<ModelRegistry>.Instance);

    private static ModelRecord Record(string version) => new()
    {
        Version = version,
        Origin = "test",
        ArtifactPrefix = ModelRegistry.PrefixFor(version),
        CardJson = JsonSerializer.Serialize(new ModelCard { Version = version, Labels = ["a", "b"], Onnx = "model.onnx", Input = new ModelInputSpec() },
            ModelCard.JsonOptions),
    };

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _bus.DisposeAsync();
        _database.Dispose();
        _cache.Delete(recursive: true);
    }
}
