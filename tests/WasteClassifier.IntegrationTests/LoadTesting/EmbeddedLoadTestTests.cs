using WasteClassifier.IntegrationTests.Embedded;
using WasteClassifier.LoadTesting;
using WasteClassifier.LoadTesting.Images;
using WasteClassifier.LoadTesting.Reporting;
using WasteClassifier.LoadTesting.Targets;

namespace WasteClassifier.IntegrationTests.LoadTesting;

/// <summary>The load tester against the real API (embedded default): a run of known size is counted exactly.</summary>
[Collection(EmbeddedCollection.Name)]
public sealed class EmbeddedLoadTestTests(EmbeddedApiFixture fixture)
{
    [Fact]
    public async Task ClosedLoop_TwelveImages_AllCompletedWithServerTimingsAndReports()
    {
        var client = fixture.Factory.CreateClient();
        var options = new LoadTestOptions
        {
            Target = client.BaseAddress,
            Users = 4,
            MaxRequests = 12,
            Duration = TimeSpan.FromSeconds(60),
            Drain = TimeSpan.FromSeconds(60),
            PollInterval = TimeSpan.FromMilliseconds(50),
            Source = "loadtest-embedded",
        };
        await using var target = new HttpLoadTarget(client, options.Source);

        var report = LoadReport.From(await new LoadRunner(target, ImageSet.Generated(3, 320, 240), options).RunAsync());

        Assert.Equal(12, report.Counts.Submitted);
        Assert.Equal(12, report.Counts.Completed);
        Assert.Equal(0, report.Counts.Failed);
        Assert.Equal(12, report.LatencyMs.EndToEnd.Count);
        Assert.Equal(12, report.LatencyMs.Inference.Count);
        Assert.True(report.LatencyMs.EndToEnd.P50 > 0);
        Assert.True(report.LatencyMs.Client.P50 >= report.LatencyMs.EndToEnd.P50, "the client sees a result after the server writes it");
        var folder = Path.Combine(fixture.DataDirectory, "report");
        Assert.All(ReportFiles.Write(report, folder), f => Assert.True(File.Exists(f)));
    }
}
