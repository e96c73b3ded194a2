using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Stats;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// The dashboard's time series, counted by the database on the real PostgreSQL and on SQLite: rows placed in known
/// steps give the same counts, queue depths, rates and percentiles on both, whatever the number of rows.
/// </summary>
public sealed class TimeSeriesServiceTests
{
    private static readonly DateTime Now = new(2026, 11, 30, 12, 0, 30, DateTimeKind.Utc);

    [IntegrationFact]
    public Task Get_OnPostgres_CountsEachStepFromTheDatabase() => WithDatabaseAsync(DatabaseProviders.Postgres, CountsEachStepAsync);

    [Fact]
    public Task Get_OnSqlite_CountsEachStepFromTheDatabase() => WithDatabaseAsync(DatabaseProviders.Sqlite, CountsEachStepAsync);

    private static async Task CountsEachStepAsync(Func<ClassifierDbContext> newContext)
    {
        // Five one-minute steps, 11:56–12:01; "now" is half-way through the last.
        await using (var db = newContext())
        {
            var image = TestRows.Image("a", At(11, 0));
            void Add(string created, string? started, string? completed, string status, string? worker = null, double? totalMs = null) =>
                db.Classifications.Add(new Classification
                {
                    Id = Guid.CreateVersion7(),
                    Image = image,
                    Status = status,
                    CreatedAt = Parse(created)!.Value,
                    StartedAt = Parse(started),
                    CompletedAt = Parse(completed),
                    WorkerId = worker,
                    ModelVersion = worker is null ? null : "v1",
                    TotalMs = totalMs,
                });
            Add("11:50:00", "11:50:10", "11:50:20", ClassificationStatus.Completed, "w1", 999); // before the window
            Add("11:54:00", null, null, ClassificationStatus.Queued); // waiting since before the window
            Add("11:55:00", "11:56:30", "11:56:40", ClassificationStatus.Completed, "w1", 100);
            Add("11:57:10", "11:57:20", "11:57:50", ClassificationStatus.Completed, "w1", 200);
            Add("11:57:15", "11:58:05", "11:58:10", ClassificationStatus.Completed, "w2", 300);
            Add("11:58:30", null, "11:58:31", ClassificationStatus.Failed); // refused by a worker that never started it
            Add("11:59:10", null, null, ClassificationStatus.Queued);
            Add("12:00:05", "12:00:10", "12:00:20", ClassificationStatus.Completed, "w1", 50);
            await db.SaveChangesAsync();
        }

        await using (var db = newContext())
        {
            var series = await new TimeSeriesService(db, new FixedClock(Now)).GetAsync(minutes: 5, stepSeconds: 60, CancellationToken.None);

            Assert.Equal(At(11, 56), series.From.UtcDateTime);
            Assert.Equal(new long[] { 1, 1, 1, 0, 1 }, series.Points.Select(p => p.Completed));
            Assert.Equal(new long[] { 0, 0, 1, 0, 0 }, series.Points.Select(p => p.Failed));
            Assert.Equal(new long[] { 1, 2, 1, 2, 2 }, series.Points.Select(p => p.QueueDepth));
            Assert.Equal(new double?[] { 100, 200, 300, null, 50 }, series.Points.Select(p => p.P50Ms));
            // The last step has run for 30 s of its 60: its one image is a rate of 1/30 per second, not 1/60.
            Assert.Equal(new[] { 0.017, 0.017, 0.017, 0, 0.033 }, series.Points.Select(p => p.ImagesPerSecond));
            Assert.Equal(new long[] { 1, 1, 0, 0, 1 }, series.CompletedPerWorker["w1"]);
            Assert.Equal(new long[] { 0, 0, 1, 0, 0 }, series.CompletedPerWorker["w2"]);
            Assert.Equal(new long[] { 1, 1, 1, 0, 1 }, series.CompletedPerModelVersion["v1"]);
        }
    }

    private static DateTime At(int hour, int minute) => new(2026, 11, 30, hour, minute, 0, DateTimeKind.Utc);

    private static DateTime? Parse(string? time) => time is null ? null : DateTime.SpecifyKind(DateTime.Parse($"2026-11-30T{time}", System.Globalization.CultureInfo.InvariantCulture), DateTimeKind.Utc);

    private sealed class FixedClock(DateTime now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    private static Task WithDatabaseAsync(string provider, Func<Func<ClassifierDbContext>, Task> test) =>
        ProviderDatabases.WithDatabaseAsync(provider, "wc-series", test);
}
