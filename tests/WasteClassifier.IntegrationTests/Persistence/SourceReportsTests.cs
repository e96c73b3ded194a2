using WasteClassifier.Api.Ingestion;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>A source's composition over its default range, on the real PostgreSQL (which keeps microseconds) and on SQLite.</summary>
public sealed class SourceReportsTests
{
    [IntegrationFact]
    public Task Composition_OnPostgres_DefaultRangeIncludesTheLastImageWhenThisClockIsBehind() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-sources", DefaultRangeIncludesTheLastImageAsync);

    [Fact]
    public Task Composition_OnSqlite_DefaultRangeIncludesTheLastImageWhenThisClockIsBehind() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-sources", DefaultRangeIncludesTheLastImageAsync);

    private static async Task DefaultRangeIncludesTheLastImageAsync(Func<ClassifierDbContext> newContext)
    {
        // Written by an API whose clock runs ahead of this one's: the source's last image is "in the future" here.
        var last = new DateTime(2026, 11, 30, 12, 0, 0, DateTimeKind.Utc).AddTicks(1_234_560);
        await using (var db = newContext())
        {
            var image = TestRows.Image("a", last);
            foreach (var created in new[] { last.AddMinutes(-5), last })
                db.Classifications.Add(new Classification
                {
                    Id = Guid.CreateVersion7(),
                    Image = image,
                    Source = "skewed-cam",
                    Status = ClassificationStatus.Completed,
                    CreatedAt = created,
                    CompletedAt = created,
                    PredictedClass = "glass",
                });
            await db.SaveChangesAsync();
        }

        await using (var db = newContext())
        {
            var reports = new SourceReports(db);
            var span = (await reports.SpanAsync("skewed-cam", CancellationToken.None))!.Value;
            var end = SourceReports.DefaultEnd(span.Last, now: last.AddMinutes(-1));

            var composition = await reports.CompositionAsync("skewed-cam", span.First, end, "hour", CancellationToken.None);

            Assert.Equal(2, composition.Overall.Classified);
        }
    }
}
