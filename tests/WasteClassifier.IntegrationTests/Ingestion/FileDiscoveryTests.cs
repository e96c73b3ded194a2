using WasteClassifier.Cli.Ingest;

namespace WasteClassifier.IntegrationTests.Ingestion;

/// <summary>Which of a camera folder's entries <c>wastectl ingest</c> looks at.</summary>
public sealed class FileDiscoveryTests
{
    [Fact]
    public void Subfolders_ArchiveGivenWithATrailingSeparator_NotCountedAsSkipped()
    {
        var folder = IngestionFixture.TempFolder("subfolders-archive");
        Directory.CreateDirectory(Path.Combine(folder, "day-1"));
        var archive = Path.Combine(folder, "sent");
        Directory.CreateDirectory(archive);

        Assert.Equal(1, FileDiscovery.Subfolders(folder, [archive]));
        Assert.Equal(1, FileDiscovery.Subfolders(folder, [archive + Path.DirectorySeparatorChar]));
    }

    [Fact]
    public void Subfolders_ArchiveAndFailedFolderInside_NeitherCountedAsSkipped()
    {
        var folder = IngestionFixture.TempFolder("subfolders-failed");
        Directory.CreateDirectory(Path.Combine(folder, "day-1"));
        var (archive, failed) = (Path.Combine(folder, "sent"), Path.Combine(folder, "failed"));
        Directory.CreateDirectory(archive);
        Directory.CreateDirectory(failed);

        Assert.Equal(1, FileDiscovery.Subfolders(folder, [archive, failed]));
    }
}
