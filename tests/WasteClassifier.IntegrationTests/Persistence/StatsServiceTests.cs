using WasteClassifier.Api.Stats;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// /stats's latency percentiles: PostgreSQL computes them in the database (all three columns in one scan), SQLite in
/// memory; both must give the same figures, skipping rows that lack a column and rows not completed.
/// </summary>
public sealed class StatsServiceTests
{
    [IntegrationFact]
    public Task Get_OnPostgres_LatencyPercentilesPerColumn() => ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-stats", LatencyPercentilesPerColumnAsync);

    [Fact]
    public Task Get_OnSqlite_LatencyPercentilesPerColumn() => ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-stats", LatencyPercentilesPerColumnAsync);

    private static async Task LatencyPercentilesPerColumnAsync(Func<ClassifierDbContext> newContext)
    {
        var now = DateTime.UtcNow;
        await using (var db = newContext())
        {
            var image = TestRows.Image("a", now);
            void Add(string status, double? queueMs, double? inferenceMs, double? totalMs) => db.Classifications.Add(new Classification
            {
                Id = Guid.CreateVersion7(),
                Image = image,
                Status = status,
                CreatedAt = now,
                CompletedAt = now,
                QueueMs = queueMs,
                InferenceMs = inferenceMs,
                TotalMs = totalMs,
            });
            // total 1..100; queue on every other row; inference on none (a duplicate frame's copy carries no timings).
            for (var i = 1; i <= 100; i++) Add(ClassificationStatus.Completed, i % 2 == 0 ? i * 10 : null, null, i);
            Add(ClassificationStatus.Failed, 5000, 5000, 5000); // not completed: left out
            await db.SaveChangesAsync();
        }

        await using (var db = newContext())
        {
            var latency = (await new StatsService(db, TimeProvider.System).GetAsync(CancellationToken.None)).LatencyMs;

            Assert.Equal(["queue", "inference", "total"], latency.Keys);
            Assert.Equal(new LatencySummary(100, 1, 50.5, 50.5, 95.05, 99.01, 100), latency["total"]);
            Assert.Equal(LatencySummary.FromSorted(Enumerable.Range(1, 50).Select(i => i * 20.0).ToList()), latency["queue"]);
            Assert.Equal(LatencySummary.Empty, latency["inference"]);
        }
    }
}
