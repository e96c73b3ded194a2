using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.UnitTests.Infrastructure;

public sealed class FileSystemObjectStoreTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", $"store-{Guid.NewGuid():N}");

    [Fact]
    public async Task GetBounded_WithinAndOverTheBound_ReadsOrRefusesAndReportsMissingObjects()
    {
        var store = new FileSystemObjectStore(_root);
        await store.EnsureReadyAsync(CancellationToken.None);
        var content = Enumerable.Range(0, 1000).Select(i => (byte)i).ToArray();
        await store.PutAsync("uploads/abc", content, "image/png", CancellationToken.None);

        Assert.Equal(content, await store.GetAsync("uploads/abc", 1000, CancellationToken.None));
        var error = await Assert.ThrowsAsync<ObjectTooLargeException>(() => store.GetAsync("uploads/abc", 999, CancellationToken.None));
        Assert.Equal(999, error.MaxBytes);
        Assert.Null(await store.GetAsync("uploads/missing", 1000, CancellationToken.None));
        Assert.Null(await store.GetAsync("elsewhere/missing", 1000, CancellationToken.None));
    }

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }
}
