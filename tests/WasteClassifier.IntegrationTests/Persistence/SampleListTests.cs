using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Apis;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// GET and DELETE /v1/samples on both providers: every job trains on every labelled sample, a cancelled job's uploads
/// included, and there was no way to see or take one out.
/// </summary>
public sealed class SampleListTests
{
    private static readonly DateTime Start = new(2026, 12, 1, 12, 0, 0, DateTimeKind.Utc);

    [IntegrationFact]
    public Task Samples_OnPostgres_ListedByPagesAndFiltersThenDeleted() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-samples", ListThenDeleteAsync);

    [Fact]
    public Task Samples_OnSqlite_ListedByPagesAndFiltersThenDeleted() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-samples", ListThenDeleteAsync);

    private static async Task ListThenDeleteAsync(Func<ClassifierDbContext> newContext)
    {
        // Two jobs' uploads (one of them cancelled) and a correction, each of its own image.
        var cancelledJob = Guid.CreateVersion7();
        var otherJob = Guid.CreateVersion7();
        var samples = new[] { ("a", "glass", (Guid?)cancelledJob), ("b", "metal", cancelledJob), ("c", "glass", otherJob), ("d", "glass", null) }
            .Select((s, i) => new LabelledSample
            {
                Id = Guid.CreateVersion7(),
                Image = TestRows.Image(s.Item1, Start),
                Label = s.Item2,
                Origin = s.Item3 is null ? SampleOrigin.Feedback : SampleOrigin.Upload,
                TrainingJobId = s.Item3,
                CreatedAt = Start.AddSeconds(i),
            })
            .ToList();
        await using (var db = newContext())
        {
            db.LabelledSamples.AddRange(samples);
            await db.SaveChangesAsync();
        }

        // Newest first by id (version 7: as they were created, a uuid's order being its text's on both providers), page by page.
        List<Guid> Expected(Func<LabelledSample, bool> filter) =>
            samples.Where(filter).OrderByDescending(s => s.Id.ToString(), StringComparer.Ordinal).Select(s => s.Id).ToList();
        foreach (var limit in new[] { 1, 3, 50 })
            Assert.Equal(Expected(_ => true), (await AllPagesAsync(newContext, limit, label: null, job: null)).Select(s => s.Id));
        Assert.Equal(Expected(s => s.Label == "glass"), (await AllPagesAsync(newContext, 2, "glass", job: null)).Select(s => s.Id));
        var ofTheCancelledJob = await AllPagesAsync(newContext, 1, label: null, cancelledJob);
        Assert.Equal(Expected(s => s.TrainingJobId == cancelledJob), ofTheCancelledJob.Select(s => s.Id));
        var metal = ofTheCancelledJob.Single(s => s.Label == "metal");
        Assert.Equal((samples[1].Id, "upload", "b.jpg", new string('b', 64), Start.AddSeconds(1)),
            (metal.Id, metal.Origin, metal.Filename, metal.ContentHash, metal.CreatedAt.UtcDateTime));
        Assert.Single(await AllPagesAsync(newContext, 50, "glass", cancelledJob));

        // A deleted sample is gone from the list (so from training); its image stays, as a classification may use it.
        await using (var db = newContext())
            Assert.IsType<NoContent>(await SamplesApi.DeleteAsync(samples[0].Id, db, CancellationToken.None));
        Assert.Equal([samples[1].Id], (await AllPagesAsync(newContext, 50, label: null, cancelledJob)).Select(s => s.Id));
        await using (var db = newContext())
        {
            Assert.False(await db.LabelledSamples.AnyAsync(s => s.Id == samples[0].Id));
            Assert.True(await db.Images.AnyAsync(i => i.Id == samples[0].ImageId));
            var again = Assert.IsType<JsonHttpResult<ApiError>>(await SamplesApi.DeleteAsync(samples[0].Id, db, CancellationToken.None));
            Assert.Equal((StatusCodes.Status404NotFound, "not_found"), (again.StatusCode, again.Value!.Error));
        }
    }

    [IntegrationFact]
    public Task Samples_OnPostgres_FromAClassification_ShowItsFileName() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-samples-names", ClassificationFileNamesAsync);

    [Fact]
    public Task Samples_OnSqlite_FromAClassification_ShowItsFileName() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-samples-names", ClassificationFileNamesAsync);

    private static async Task ClassificationFileNamesAsync(Func<ClassifierDbContext> newContext)
    {
        // One image (a.jpg, its first upload's name) classified again as line-2's frame, whose label made a sample; a
        // classification from before names were kept per upload, and a sample of no classification, show the image's.
        var image = TestRows.Image("a", Start);
        var other = TestRows.Image("b", Start);
        Classification Row(StoredImage of, string? fileName) => new()
        {
            Id = Guid.CreateVersion7(),
            Image = of,
            Source = "line-2",
            FileName = fileName,
            CreatedAt = Start,
        };
        var named = Row(image, "line-2 frame.jpg");
        var older = Row(other, null);
        LabelledSample Sample(StoredImage of, Classification? from, int second) => new()
        {
            Id = Guid.CreateVersion7(),
            Image = of,
            Label = "glass",
            Origin = SampleOrigin.Feedback,
            ClassificationId = from?.Id,
            CreatedAt = Start.AddSeconds(second),
        };
        var samples = new[] { Sample(image, named, 0), Sample(other, older, 1) };
        await using (var db = newContext())
        {
            db.Classifications.AddRange(named, older);
            db.LabelledSamples.AddRange(samples);
            await db.SaveChangesAsync();
        }

        var listed = (await AllPagesAsync(newContext, 50, label: null, job: null)).ToDictionary(s => s.Id, s => s.Filename);
        Assert.Equal("line-2 frame.jpg", listed[samples[0].Id]);
        Assert.Equal("b.jpg", listed[samples[1].Id]);
    }

    [Theory]
    [InlineData("limit", "0", "invalid_limit")]
    [InlineData("cursor", "not-a-cursor", "invalid_cursor")]
    [InlineData("label", "gla\u0000ss", "invalid_label")]
    public Task Samples_BadQuery_400(string parameter, string value, string error) =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-samples-bad", async newContext =>
        {
            await using var db = newContext();
            var result = await SamplesApi.ListAsync(db, parameter == "label" ? value : null, trainingJobId: null,
                parameter == "limit" ? int.Parse(value, System.Globalization.CultureInfo.InvariantCulture) : null, parameter == "cursor" ? value : null,
                CancellationToken.None);
            var answer = Assert.IsType<JsonHttpResult<ApiError>>(result);
            Assert.Equal((StatusCodes.Status400BadRequest, error), (answer.StatusCode, answer.Value!.Error));
        });

    private static async Task<List<SamplesApi.SampleView>> AllPagesAsync(Func<ClassifierDbContext> newContext, int limit, string? label, Guid? job)
    {
        var items = new List<SamplesApi.SampleView>();
        string? cursor = null;
        do
        {
            await using var db = newContext();
            var page = Assert.IsType<Ok<SamplesApi.SamplePage>>(await SamplesApi.ListAsync(db, label, job, limit, cursor, CancellationToken.None)).Value!;
            Assert.True(page.Items.Count <= limit);
            items.AddRange(page.Items);
            cursor = page.NextCursor;
            Assert.True(items.Count <= 100, "the pages do not end");
        }
        while (cursor is not null);
        return items;
    }
}
