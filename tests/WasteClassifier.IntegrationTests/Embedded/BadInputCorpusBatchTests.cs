using System.Diagnostics;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>
/// The whole bad-input corpus in one batch through the queue, beside good images: the good ones complete, the bad ones
/// fail with reasons, the worker keeps working, and memory stays bounded. Memory is the process's, so this runs with
/// nothing beside it (a model loading in a parallel test holds more than the budget).
/// </summary>
[Collection(ProcessMetricsCollection.Name)]
public sealed class BadInputCorpusBatchTests(EmbeddedApiFixture fixture) : IClassFixture<EmbeddedApiFixture>
{
    [Fact]
    public async Task Queue_WholeCorpusInOneBatchWithGoodImages_GoodOnesCompleteBadOnesFailWithReasons()
    {
        var corpus = BadImageCorpus.Create().Where(e => e.Content.Length > 0).ToList();
        var good = Dataset.Sample(perClass: 1).Take(3).Select(s => File.ReadAllBytes(s.Path)).ToList();
        var objects = good.Select(g => ($"test/{Guid.NewGuid():N}", (byte[]?)g))
            .Concat(corpus.Select(e => ($"test/{Guid.NewGuid():N}", (byte[]?)e.Content))).ToList();
        var memoryBefore = ManagedAfterCollection();

        var ids = await WorkerBatchTests.RecordAsync(fixture, objects, send: true);
        var results = await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(2));

        Assert.All(results.Take(3), r => Assert.Equal("completed", r["status"]!.GetValue<string>()));
        foreach (var (entry, row) in corpus.Zip(results.Skip(3)))
        {
            var status = row["status"]!.GetValue<string>();
            if (entry.WorkerFailsWith is not null) Assert.Equal(entry.WorkerFailsWith, row["error_code"]?.GetValue<string>());
            if (entry.RefusedWith is "not_an_image" or "empty_file") Assert.Equal("failed", status);
            if (status == "failed") Assert.False(string.IsNullOrWhiteSpace(row["error"]?.GetValue<string>()), entry.Name);
        }
        // The worker is still up: a good image sent afterwards completes.
        var after = await WorkerBatchTests.RecordAsync(fixture, [($"test/{Guid.NewGuid():N}", good[0])], send: true);
        Assert.Equal("completed", (await fixture.Client.WaitForAllAsync(after, TimeSpan.FromMinutes(1)))[0]["status"]!.GetValue<string>());
        // Bounded: decoding the corpus retains nothing big (the budget is one 40 MP decode, not frames × canvas).
        Assert.True(ManagedAfterCollection() - memoryBefore < 200L * 1024 * 1024, "managed memory grew by more than 200 MB");
        Assert.True(Process.GetCurrentProcess().PeakWorkingSet64 < 4L * 1024 * 1024 * 1024, "peak working set over 4 GB");
    }

    private static long ManagedAfterCollection()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }
}
