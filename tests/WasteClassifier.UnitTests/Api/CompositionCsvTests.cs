using WasteClassifier.Api.Apis;
using WasteClassifier.Api.Ingestion;

namespace WasteClassifier.UnitTests.Api;

/// <summary>The composition's CSV: the class rows as before, each with its bucket's totals as the JSON names them.</summary>
public sealed class CompositionCsvTests
{
    private static readonly DateTimeOffset Nine = new(2026, 11, 28, 9, 0, 0, TimeSpan.Zero);

    private static SourceReports.Slice Slice(DateTimeOffset start, TimeSpan length, long total, long classified, long pending, long failed, long duplicates,
        params (string Name, long Count, double Share)[] classes) =>
        new(start, start + length, total, classified, pending, failed, duplicates, classes.ToDictionary(c => c.Name, c => new SourceReports.ClassShare(c.Count, c.Share)));

    [Fact]
    public void CompositionCsv_BucketsWithDuplicatesFailedAndPending_EveryRowEndsWithItsBucketsTotals()
    {
        // 09:00: 3 glass (1 of them a duplicate frame), 1 metal, 1 failed, 1 queued. 10:00: 2 failed, nothing classified.
        var first = Slice(Nine, TimeSpan.FromHours(1), 6, 4, 1, 1, 1, ("glass", 3, 0.75), ("metal", 1, 0.25));
        var second = Slice(Nine.AddHours(1), TimeSpan.FromHours(1), 2, 0, 0, 2, 0, ("glass", 0, 0), ("metal", 0, 0));
        var overall = Slice(Nine, TimeSpan.FromHours(2), 8, 4, 1, 3, 1, ("glass", 3, 0.75), ("metal", 1, 0.25));
        var composition = new SourceReports.Composition("line,3", Nine, Nine.AddHours(2), "hour", ["glass", "metal"], overall, [first, second]);

        var lines = SourcesApi.CompositionCsv(composition).ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);

        // The old columns first, in their old places, so existing spreadsheets keep reading them.
        Assert.Equal("source,scope,bucket_start,bucket_end,class,count,share,total,classified,pending,failed,duplicates", lines[0]);
        Assert.Equal(
        [
            "\"line,3\",hour,2026-11-28T09:00:00Z,2026-11-28T10:00:00Z,glass,3,0.75,6,4,1,1,1",
            "\"line,3\",hour,2026-11-28T09:00:00Z,2026-11-28T10:00:00Z,metal,1,0.25,6,4,1,1,1",
            "\"line,3\",hour,2026-11-28T10:00:00Z,2026-11-28T11:00:00Z,glass,0,0,2,0,0,2,0",
            "\"line,3\",hour,2026-11-28T10:00:00Z,2026-11-28T11:00:00Z,metal,0,0,2,0,0,2,0",
            "\"line,3\",overall,2026-11-28T09:00:00Z,2026-11-28T11:00:00Z,glass,3,0.75,8,4,1,3,1",
            "\"line,3\",overall,2026-11-28T09:00:00Z,2026-11-28T11:00:00Z,metal,1,0.25,8,4,1,3,1",
        ], lines.Skip(1));
    }

    [Fact]
    public void CompositionCsv_NothingClassified_EachBucketIsOneRowWithAnEmptyClass()
    {
        // Only failed images: no class at all, which left the CSV with its header alone.
        var bucket = Slice(Nine, TimeSpan.FromMinutes(1), 2, 0, 0, 2, 1);
        var composition = new SourceReports.Composition(null, Nine, Nine.AddMinutes(1), "minute", [], bucket, [bucket]);

        var lines = SourcesApi.CompositionCsv(composition).ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(
        [
            ",minute,2026-11-28T09:00:00Z,2026-11-28T09:01:00Z,,0,0,2,0,0,2,1",
            ",overall,2026-11-28T09:00:00Z,2026-11-28T09:01:00Z,,0,0,2,0,0,2,1",
        ], lines.Skip(1));
    }
}
