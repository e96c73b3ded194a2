using WasteClassifier.LoadTesting;
using WasteClassifier.LoadTesting.Reporting;

namespace WasteClassifier.IntegrationTests.LoadTesting;

/// <summary>The load tests' run of known size: twelve images, four closed-loop users, ended by its request bound.</summary>
internal static class KnownRun
{
    public const int Images = 12;

    /// <param name="target">The API's base URL (HTTP mode); null for queue mode.</param>
    public static LoadTestOptions Options(string source, Uri? target = null) => new()
    {
        Target = target,
        Queue = target is null,
        Users = 4,
        MaxRequests = Images,
        Duration = TimeSpan.FromSeconds(60),
        Drain = TimeSpan.FromSeconds(60),
        PollInterval = TimeSpan.FromMilliseconds(50),
        Source = source,
    };

    /// <summary>Every image completed, each with the server's own timings from the database.</summary>
    public static void AssertAllCompleted(LoadReport report)
    {
        Assert.Equal(Images, report.Counts.Submitted);
        Assert.Equal(Images, report.Counts.Completed);
        Assert.Equal(0, report.Counts.Failed);
        Assert.Equal(Images, report.LatencyMs.QueueWait.Count);
        Assert.Equal(Images, report.LatencyMs.Inference.Count);
        Assert.Equal(Images, report.LatencyMs.EndToEnd.Count);
        Assert.True(report.LatencyMs.Inference.P50 > 0);
        Assert.True(report.LatencyMs.EndToEnd.P50 >= report.LatencyMs.Inference.P50, "end to end includes the inference");
        // Every result row names its worker: the per-worker figures account for every completion.
        Assert.Equal(Images, report.Workers!.Sum(w => w.Completed));
        Assert.All(report.Workers!, w => Assert.True(w.MeanBatchSize >= 1, $"{w.WorkerId}: batch {w.MeanBatchSize}"));
    }
}
