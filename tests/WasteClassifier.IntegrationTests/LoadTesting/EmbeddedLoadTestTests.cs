using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Embedded;
using WasteClassifier.LoadTesting;
using WasteClassifier.LoadTesting.Images;
using WasteClassifier.LoadTesting.Reporting;
using WasteClassifier.LoadTesting.Targets;

namespace WasteClassifier.IntegrationTests.LoadTesting;

/// <summary>
/// The load tester against the real API (embedded default): a run of known size is counted exactly, and its cleanup
/// removes what the run created.
/// </summary>
[Collection(EmbeddedCollection.Name)]
public sealed class EmbeddedLoadTestTests(EmbeddedApiFixture fixture)
{
    [Fact]
    public async Task ClosedLoop_TwelveImages_AllCompletedWithServerTimingsReportsAndCleanup()
    {
        var runStarted = DateTime.UtcNow;
        var client = fixture.Factory.CreateClient();
        var options = KnownRun.Options("loadtest-embedded", client.BaseAddress);
        await using var target = new HttpLoadTarget(client, options.Source);

        var report = LoadReport.From(await new LoadRunner(target, ImageSet.Generated(3, 320, 240), options).RunAsync());

        KnownRun.AssertAllCompleted(report);
        Assert.True(report.LatencyMs.Client.P50 >= report.LatencyMs.EndToEnd.P50, "the client sees a result after the server writes it");
        var folder = Path.Combine(fixture.DataDirectory, "report");
        Assert.All(ReportFiles.Write(report, folder), f => Assert.True(File.Exists(f)));

        // Every upload was new content (stamped), so the run created an image, with its object, per upload.
        using var scope = fixture.Factory.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var keys = await db.Classifications.Where(c => c.Source == options.Source).Select(c => c.Image!.ObjectKey).ToListAsync();
        Assert.Equal(KnownRun.Images, keys.Distinct().Count());
        var removed = await RunCleanup.RemoveAsync(fixture.Factory.Services, options.Source, runStarted, CancellationToken.None);
        Assert.Equal(new RunCleanup.Removed(KnownRun.Images, KnownRun.Images), removed);
        Assert.False(await db.Classifications.AnyAsync(c => c.Source == options.Source));
        var store = scope.ServiceProvider.GetRequiredService<IObjectStore>();
        foreach (var key in keys) Assert.Null(await store.GetAsync(key, CancellationToken.None));
    }

    [Fact]
    public async Task EarlierRun_RemovedByItsSourceAlone_OnlyALoadTestsSource()
    {
        var client = fixture.Factory.CreateClient();
        var options = KnownRun.Options("loadtest-embedded-earlier", client.BaseAddress);
        await using (var target = new HttpLoadTarget(client, options.Source))
            KnownRun.AssertAllCompleted(LoadReport.From(await new LoadRunner(target, ImageSet.Generated(3, 320, 240), options).RunAsync()));

        // As `wastectl loadtest --cleanup --source …` does for a run that could not clean up after itself.
        var removed = await RunCleanup.RemoveEarlierRunAsync(fixture.Factory.Services, options.Source, CancellationToken.None);

        Assert.Equal(new RunCleanup.Removed(KnownRun.Images, KnownRun.Images), removed);
        Assert.Null(await RunCleanup.RemoveEarlierRunAsync(fixture.Factory.Services, options.Source, CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentException>(() => RunCleanup.RemoveEarlierRunAsync(fixture.Factory.Services, "line-3", CancellationToken.None));
    }
}
