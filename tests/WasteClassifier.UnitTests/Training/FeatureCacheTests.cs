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
    public void Add_FromInstancesAtOnce_EveryRecordReadsBackWhole()
    {
        // Four trainers sharing the folder append batches of 512-float records (2,080 bytes, written in 4 KB pieces at
        // the offset each writer believes is the end) at the same time, each on a thread of its own; the first thing each
        // does is load the file the others are appending to.
        const int writers = 4, batches = 50, perBatch = 40, width = 512;
        static byte[] Hash(int writer, int batch, int item) => [.. Enumerable.Repeat((byte)writer, 16), .. BitConverter.GetBytes(batch * 1000 + item), .. new byte[12]];
        static float[] Features(byte[] hash) => [.. Enumerable.Range(0, width).Select(i => (float)(hash[0] * 1_000_000 + BitConverter.ToInt32(hash, 16) * 10 + i % 10))];

        using var start = new Barrier(writers);
        var threads = Enumerable.Range(1, writers).Select(w => new Thread(() =>
        {
            var cache = new FeatureCache(directory, "backbone", width);
            start.SignalAndWait();
            for (var b = 0; b < batches; b++)
            {
                cache.TryGet("full", new byte[32], out _);
                cache.Add("full", [.. Enumerable.Range(0, perBatch).Select(i => Hash(w, b, i)).Select(h => (h, Features(h)))]);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        var reader = new FeatureCache(directory, "backbone", width);
        for (var w = 1; w <= writers; w++)
            for (var b = 0; b < batches; b++)
                for (var i = 0; i < perBatch; i++)
                {
                    var hash = Hash(w, b, i);
                    Assert.True(reader.TryGet("full", hash, out var features), $"record {w}/{b}/{i} missing");
                    Assert.Equal(Features(hash), features);
                }
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

        Assert.Equal(["full-flip.f2.p1.bin", "full-flip.f2.p1.bin.lock"], Directory.GetFiles(Path.Combine(directory, "backbone")).Select(Path.GetFileName).Order());
    }

    public void Dispose() => Directory.Delete(directory, recursive: true);
}
