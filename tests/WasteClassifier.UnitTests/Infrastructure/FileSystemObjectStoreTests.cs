using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.UnitTests.Infrastructure;

/// <summary>The folder store's bounded reads, and its readiness check: the folder must take a file, not merely exist.</summary>
public sealed class FileSystemObjectStoreTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("fs-store-test").FullName;

    [Fact]
    public async Task GetBounded_WithinAndOverTheBound_ReadsOrRefusesAndReportsMissingObjects()
    {
        var store = new FileSystemObjectStore(_directory);
        await store.EnsureReadyAsync(CancellationToken.None);
        var content = Enumerable.Range(0, 1000).Select(i => (byte)i).ToArray();
        await store.PutAsync("uploads/abc", content, "image/png", CancellationToken.None);

        Assert.Equal(content, await store.GetAsync("uploads/abc", 1000, CancellationToken.None));
        var error = await Assert.ThrowsAsync<ObjectTooLargeException>(() => store.GetAsync("uploads/abc", 999, CancellationToken.None));
        Assert.Equal(999, error.MaxBytes);
        Assert.Null(await store.GetAsync("uploads/missing", 1000, CancellationToken.None));
        Assert.Null(await store.GetAsync("elsewhere/missing", 1000, CancellationToken.None));
    }

    [Fact]
    public async Task Put_FolderThatCannotTakeTheObject_ObjectStoreWriteException()
    {
        // A file where the key's folder should be: creating it fails as on a full or read-only volume, for root too.
        await File.WriteAllBytesAsync(Path.Combine(_directory, "sha256"), [1]);

        var error = await Assert.ThrowsAsync<ObjectStoreWriteException>(() =>
            new FileSystemObjectStore(_directory).PutAsync("sha256/ab/abc", new byte[] { 1, 2, 3 }, "image/png", CancellationToken.None));

        Assert.IsAssignableFrom<IOException>(error.InnerException);
    }

    [Fact]
    public async Task Check_WritableFolder_PassesAndLeavesNothingBehind()
    {
        await new FileSystemObjectStore(_directory).CheckAsync(CancellationToken.None);

        Assert.Empty(Directory.EnumerateFileSystemEntries(_directory));
    }

    [SkippableFact]
    public async Task Check_FolderThatExistsButTakesNoFile_Fails()
    {
        // procfs: a folder in which nobody, root included, can create a file, as on a read-only or full volume.
        Skip.IfNot(OperatingSystem.IsLinux() && Directory.Exists("/proc/self"), "needs Linux procfs");

        var error = await Assert.ThrowsAsync<IOException>(() => new FileSystemObjectStore("/proc/self").CheckAsync(CancellationToken.None));

        Assert.Contains("/proc/self cannot be written", error.Message);
    }

    [Fact]
    public async Task Check_MissingFolder_Fails() =>
        await Assert.ThrowsAsync<DirectoryNotFoundException>(() => new FileSystemObjectStore(Path.Combine(_directory, "gone")).CheckAsync(CancellationToken.None));

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
