using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.UnitTests.Infrastructure;

/// <summary>The folder store's readiness check: the folder must take a file, not merely exist.</summary>
public sealed class FileSystemObjectStoreTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("fs-store-test").FullName;

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
