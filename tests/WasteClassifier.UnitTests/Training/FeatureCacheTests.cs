using WasteClassifier.Core.Training;

namespace WasteClassifier.UnitTests.Training;

public sealed class FeatureCacheTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("feature-cache-test").FullName;

    [Fact]
    public void TryGet_AfterAddInAnotherInstance_ReturnsSameFeatures()
    {
        byte[] sha = [.. Enumerable.Range(0, 32).Select(i => (byte)i)];
        new FeatureCache(directory, "backbone", 3).Add("full", [(sha, [1f, 2f, 3f])]);

        var found = new FeatureCache(directory, "backbone", 3).TryGet("full", sha, out var features);

        Assert.True(found);
        Assert.Equal([1f, 2f, 3f], features);
    }

    [Fact]
    public void TryGet_OtherViewOrBackbone_Misses()
    {
        var sha = new byte[32];
        new FeatureCache(directory, "backbone", 2).Add("full", [(sha, [1f, 2f])]);

        Assert.False(new FeatureCache(directory, "backbone", 2).TryGet("full-flip", sha, out _));
        Assert.False(new FeatureCache(directory, "other", 2).TryGet("full", sha, out _));
    }

    [Fact]
    public void TryGet_FeaturesOfOlderPixels_MissAndTheirFileIsDeleted()
    {
        var sha = new byte[32];
        new FeatureCache(directory, "backbone", 2, pixelsVersion: 1).Add("full", [(sha, [1f, 2f])]);
        // A file from before versions were named.
        File.WriteAllBytes(Path.Combine(directory, "backbone", "full.f2.bin"), [.. sha, .. new byte[8]]);
        new FeatureCache(directory, "backbone", 2, pixelsVersion: 1).Add("full-flip", [(sha, [3f, 4f])]);

        Assert.False(new FeatureCache(directory, "backbone", 2, pixelsVersion: 2).TryGet("full", sha, out _));

        Assert.Equal(["full-flip.f2.p1.bin"], Directory.GetFiles(Path.Combine(directory, "backbone")).Select(Path.GetFileName));
    }

    public void Dispose() => Directory.Delete(directory, recursive: true);
}
