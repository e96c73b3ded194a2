using System.Data.Common;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Api.Apis;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Models;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// GET /v1/classifications on both providers: its pages (ties on created_at included) and, on PostgreSQL, the index walk
/// its query gets, which decides whether a page reads about its size or the whole table.
/// </summary>
public sealed class ClassificationListTests
{
    private static readonly DateTime Start = new(2026, 11, 30, 12, 0, 0, DateTimeKind.Utc);

    [IntegrationFact]
    public Task List_OnPostgres_PagesThroughTiesOnCreatedAt() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-list-ties", PagesThroughTiesAsync);

    [Fact]
    public Task List_OnSqlite_PagesThroughTiesOnCreatedAt() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-list-ties", PagesThroughTiesAsync);

    private static async Task PagesThroughTiesAsync(Func<ClassifierDbContext> newContext)
    {
        // Three rows share one created_at (the cursor must part them by id), two another; one is of another class.
        var image = TestRows.Image("a", Start);
        var rows = new[] { 0, 0, 0, 1, 1, 2, 2 }.Select((second, i) => Row(image, Start.AddSeconds(second), i == 4 ? "metal" : "glass", "ties")).ToList();
        await using (var db = newContext())
        {
            db.Classifications.AddRange(rows);
            await db.SaveChangesAsync();
        }

        foreach (var predictedClass in new[] { null, "glass" })
            foreach (var limit in new[] { 1, 2, 3 })
            {
                // Newest first, ties by id descending, as the list orders (a uuid's order is its text's, on both providers).
                var expected = rows.Where(r => predictedClass is null || r.PredictedClass == predictedClass)
                    .OrderByDescending(r => r.CreatedAt).ThenByDescending(r => r.Id.ToString(), StringComparer.Ordinal).Select(r => r.Id).ToList();
                Assert.Equal(expected, await AllPagesAsync(newContext, limit, source: "ties", predictedClass));
            }
    }

    [IntegrationFact]
    public Task List_OnPostgres_WithoutSource_ListsThemApart() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-list-nosource", WithoutSourceAsync);

    [Fact]
    public Task List_OnSqlite_WithoutSource_ListsThemApart() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-list-nosource", WithoutSourceAsync);

    private static async Task WithoutSourceAsync(Func<ClassifierDbContext> newContext)
    {
        // Counted by /v1/sources (without_source) and /v1/sources/-/composition, but not listed: source=- was a 400.
        var image = TestRows.Image("a", Start);
        var rows = new[] { "cam-1", null, "cam-2", null, "cam-1", null }.Select((source, i) => Row(image, Start.AddSeconds(i), "glass", source)).ToList();
        await using (var db = newContext())
        {
            db.Classifications.AddRange(rows);
            await db.SaveChangesAsync();
        }

        var expected = rows.Where(r => r.Source is null).OrderByDescending(r => r.CreatedAt).Select(r => r.Id).ToList();
        Assert.Equal(expected, await AllPagesAsync(newContext, limit: 2, source: "-", predictedClass: null));
        Assert.Equal(2, (await AllPagesAsync(newContext, limit: 50, source: "cam-1", predictedClass: null)).Count);
    }

    [IntegrationFact]
    public Task List_OnPostgres_ShowsEachUploadsOwnFileName() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-list-names", OwnFileNamesAsync);

    [Fact]
    public Task List_OnSqlite_ShowsEachUploadsOwnFileName() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-list-names", OwnFileNamesAsync);

    private static async Task OwnFileNamesAsync(Func<ClassifierDbContext> newContext)
    {
        // One image (the same bytes) uploaded by two lines under their own names, and a row from before names were
        // recorded per upload, which shows its image's (the first upload's).
        var image = TestRows.Image("a", Start);
        var line1 = Row(image, Start.AddSeconds(1), "glass", "line-1");
        line1.FileName = "line-1 frame.jpg";
        var line2 = Row(image, Start.AddSeconds(2), "glass", "line-2");
        line2.FileName = "line-2 frame.jpg";
        var older = Row(image, Start, "glass", "line-0");
        await using (var db = newContext())
        {
            db.Classifications.AddRange(line1, line2, older);
            await db.SaveChangesAsync();
        }

        foreach (var (source, name) in new[] { ("line-1", "line-1 frame.jpg"), ("line-2", "line-2 frame.jpg"), ("line-0", "a.jpg") })
        {
            await using var db = newContext();
            var page = Assert.IsType<Ok<ClassificationPage>>(await ClassificationsApi.ListAsync(db, Registry(db), source, status: null, limit: 50, cursor: null, null,
                CancellationToken.None)).Value!;
            Assert.Equal([name], page.Items.Select(i => i.Filename));
        }
    }

    [IntegrationFact]
    public Task List_OnPostgres_ByAClassNoModelHasNorAnyResult_400NamingTheClasses() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-list-unknown-class", UnknownClassAsync);

    [Fact]
    public Task List_OnSqlite_ByAClassNoModelHasNorAnyResult_400NamingTheClasses() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-list-unknown-class", UnknownClassAsync);

    private static async Task UnknownClassAsync(Func<ClassifierDbContext> newContext)
    {
        // No model registered: the product's classes are known. "retired" is an older model's class its results still hold.
        var image = TestRows.Image("a", Start);
        var retired = Row(image, Start, "retired", "line-1");
        await using (var db = newContext())
        {
            db.Classifications.AddRange(retired, Row(image, Start.AddSeconds(1), "glass", "line-1"));
            await db.SaveChangesAsync();
        }

        Assert.Equal([retired.Id], await AllPagesAsync(newContext, limit: 50, source: null, predictedClass: "retired"));
        Assert.Empty(await AllPagesAsync(newContext, limit: 50, source: null, predictedClass: "vegetation"));
        foreach (var unknown in new[] { "Glass", "plastics" })
        {
            // It listed nothing, as a class without results does.
            await using var db = newContext();
            var answer = Assert.IsType<JsonHttpResult<ApiError>>(await ClassificationsApi.ListAsync(db, Registry(db), source: null, status: null, limit: 50, cursor: null,
                unknown, CancellationToken.None));
            Assert.Equal(StatusCodes.Status400BadRequest, answer.StatusCode);
            Assert.Equal("invalid_predicted_class", answer.Value!.Error);
            Assert.Contains($"'{unknown}'", answer.Value.Message);
            Assert.Contains(string.Join(", ", ModelRegistry.ProductClasses), answer.Value.Message);
        }
    }

    [IntegrationFact]
    public Task Finished_OnPostgres_ListsOldestFirstAndARowFinishedLateOnTheNextRun() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-list-finished", FinishedSinceAsync);

    [Fact]
    public Task Finished_OnSqlite_ListsOldestFirstAndARowFinishedLateOnTheNextRun() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-list-finished", FinishedSinceAsync);

    private static async Task FinishedSinceAsync(Func<ClassifierDbContext> newContext)
    {
        // Created in one order and finished in another: the newest-first list by created_at cannot tell what finished
        // since a client's last run. Two finish at the same moment (the cursor parts them by id).
        var start = DateTime.UtcNow.AddMinutes(-30);
        var image = TestRows.Image("a", start);
        var finished = new[] { 5, 1, 3, 3, 2 }.Select((minute, i) => Row(image, start.AddSeconds(i), "glass", "feed", completedAt: start.AddMinutes(minute))).ToList();
        var queued = Row(image, start.AddSeconds(9), "glass", "feed", completedAt: null);
        queued.Status = ClassificationStatus.Queued;
        var settling = Row(image, start.AddSeconds(10), "glass", "feed", completedAt: DateTime.UtcNow);
        var elsewhere = Row(image, start.AddSeconds(11), "glass", "other", completedAt: start.AddMinutes(4));
        await using (var db = newContext())
        {
            db.Classifications.AddRange([.. finished, queued, settling, elsewhere]);
            await db.SaveChangesAsync();
        }

        var (first, cursor) = await FinishedPagesAsync(newContext, since: start.ToString("O"), cursor: null);
        Assert.Equal(finished.OrderBy(r => r.CompletedAt).ThenBy(r => r.Id.ToString(), StringComparer.Ordinal).Select(r => r.Id), first);
        // Nothing new: the same position again. The row stamped now is not listed yet: a row stamped just before it may
        // not be written yet (a worker stamps its batch before it commits), and a cursor past it would skip that one.
        var again = await FinishedPagesAsync(newContext, since: null, cursor);
        Assert.Empty(again.Ids);
        Assert.Equal(cursor, again.Cursor);

        // A row finished after that run, and the settling row once its stamp is old enough: the next run lists both, in
        // the order they finished, and nothing listed before.
        var late = Row(image, start.AddSeconds(12), "glass", "feed", completedAt: start.AddMinutes(6));
        await using (var db = newContext())
        {
            db.Images.Attach(image); // stored with the first rows
            db.Classifications.Add(late);
            (await db.Classifications.SingleAsync(c => c.Id == settling.Id)).CompletedAt = start.AddMinutes(7);
            await db.SaveChangesAsync();
        }
        Assert.Equal([late.Id, settling.Id], (await FinishedPagesAsync(newContext, since: null, cursor)).Ids);
    }

    /// <summary>Every page of finished rows of the source "feed", two at a time, and the last answer's next_cursor.</summary>
    private static async Task<(List<Guid> Ids, string Cursor)> FinishedPagesAsync(Func<ClassifierDbContext> newContext, string? since, string? cursor)
    {
        var ids = new List<Guid>();
        while (true)
        {
            await using var db = newContext();
            var page = Assert.IsType<Ok<FinishedPage>>(await ClassificationsApi.FinishedAsync(db, TimeProvider.System, Settle60, since, cursor, "feed", limit: 2,
                CancellationToken.None)).Value!;
            ids.AddRange(page.Items.Select(i => i.Id));
            (since, cursor) = (null, page.NextCursor);
            if (!page.HasMore) return (ids, cursor);
            Assert.True(ids.Count <= 100, "the pages do not end");
        }
    }

    private static readonly FinishedListOptions Settle60 = new(TimeSpan.FromSeconds(60));

    [Fact]
    public Task Finished_OnSqlite_WaitsTheConfiguredSettleWindow() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-list-finished-settle", async newContext =>
        {
            // Api:FinishedSettleSeconds, 60 unless set: a row stamped 30 s ago may still be unwritten (a save retried).
            Assert.Equal(TimeSpan.FromSeconds(60), FinishedListOptions.From(new ConfigurationBuilder().Build()).Settle);
            var configured = FinishedListOptions.From(new ConfigurationBuilder()
                .AddInMemoryCollection(new Dictionary<string, string?> { ["Api:FinishedSettleSeconds"] = "20" }).Build());
            Assert.Equal(TimeSpan.FromSeconds(20), configured.Settle);

            var stamped = Row(TestRows.Image("a", Start), Start, "glass", "feed", completedAt: DateTime.UtcNow.AddSeconds(-30));
            await using (var db = newContext())
            {
                db.Classifications.Add(stamped);
                await db.SaveChangesAsync();
            }
            var since = DateTime.UtcNow.AddHours(-1).ToString("O");
            await using (var db = newContext())
                Assert.Empty(Assert.IsType<Ok<FinishedPage>>(await ClassificationsApi.FinishedAsync(db, TimeProvider.System, FinishedListOptions.From(new ConfigurationBuilder().Build()),
                    since, cursor: null, "feed", limit: null, CancellationToken.None)).Value!.Items);
            await using (var db = newContext())
                Assert.Equal([stamped.Id], Assert.IsType<Ok<FinishedPage>>(await ClassificationsApi.FinishedAsync(db, TimeProvider.System, configured,
                    since, cursor: null, "feed", limit: null, CancellationToken.None)).Value!.Items.Select(i => i.Id));
        });

    [Theory]
    [InlineData("2026-12-01T00:00:00")] // no offset: it was read in the server's time zone
    [InlineData("12/01/2026")] // not RFC 3339: day or month first, as the parser guessed
    [InlineData("2026-12-01 00:00:00Z")]
    [InlineData("2026-12-01T00:00:00 01:00")] // a '+' not sent as %2B arrives as a space
    [InlineData("yesterday")]
    public Task Finished_OnSqlite_ASinceNotRfc3339WithAnOffset_400InvalidSince(string since) =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-list-finished-since", async newContext =>
        {
            await using var db = newContext();
            var answer = Assert.IsType<JsonHttpResult<ApiError>>(await ClassificationsApi.FinishedAsync(db, TimeProvider.System, Settle60, since, cursor: null,
                source: null, limit: null, CancellationToken.None));
            Assert.Equal(StatusCodes.Status400BadRequest, answer.StatusCode);
            Assert.Equal("invalid_since", answer.Value!.Error);
            Assert.Contains("2026-12-01T00:00:00Z", answer.Value.Message);
        });

    [Theory]
    [InlineData("2026-12-01T00:00:00Z")]
    [InlineData("2026-12-01t00:00:00.1234567z")]
    [InlineData("2026-12-01T01:00:00+01:00")]
    [InlineData("2026-11-30T19:00:00-05:00")]
    public Task Finished_OnSqlite_AnRfc3339SinceWithZOrAnOffset_IsAccepted(string since) =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-list-finished-since", async newContext =>
        {
            await using var db = newContext();
            Assert.IsType<Ok<FinishedPage>>(await ClassificationsApi.FinishedAsync(db, TimeProvider.System, Settle60, since, cursor: null,
                source: null, limit: null, CancellationToken.None));
        });

    [Fact]
    public Task Finished_OnSqlite_ACursorOfTheNewestFirstList_400InvalidCursor() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "wc-list-finished-cursor", async newContext =>
        {
            // Both cursors are a time and an id: the list's (created_at) read as a completed_at position skipped or repeated rows.
            var image = TestRows.Image("a", Start);
            await using (var db = newContext())
            {
                db.Classifications.AddRange(Row(image, Start, "glass", "feed"), Row(image, Start.AddSeconds(1), "glass", "feed"));
                await db.SaveChangesAsync();
            }
            string listCursor;
            await using (var db = newContext())
                listCursor = Assert.IsType<Ok<ClassificationPage>>(await ClassificationsApi.ListAsync(db, Registry(db), "feed", status: null, limit: 1, cursor: null,
                    predictedClass: null, CancellationToken.None)).Value!.NextCursor!;
            await using (var db = newContext())
            {
                var answer = Assert.IsType<JsonHttpResult<ApiError>>(await ClassificationsApi.FinishedAsync(db, TimeProvider.System, Settle60, since: null, listCursor,
                    "feed", limit: null, CancellationToken.None));
                Assert.Equal(StatusCodes.Status400BadRequest, answer.StatusCode);
                Assert.Equal("invalid_cursor", answer.Value!.Error);
            }
            // And the other way round: the finished list's cursor is not one the newest-first list takes.
            var (_, finishedCursor) = await FinishedPagesAsync(newContext, since: Start.ToString("O"), cursor: null);
            await using (var db = newContext())
                Assert.Equal("invalid_cursor", Assert.IsType<JsonHttpResult<ApiError>>(await ClassificationsApi.ListAsync(db, Registry(db), "feed", status: null, limit: 1,
                    finishedCursor, predictedClass: null, CancellationToken.None)).Value!.Error);
        });

    [IntegrationFact]
    public Task List_OnPostgres_ByPredictedClass_WalksItsIndex() =>
        WithListScanAsync(source: null, predictedClass: "glass", cursor: null, scan =>
        {
            // Without an index of its own, a rare or absent class read the whole table (or the newest-first index) per page.
            Assert.True(scan.Line.Contains("ix_classifications_predicted_class_created_at_id") && scan.Condition.Contains("predicted_class"), scan.Plan);
        });

    [IntegrationFact]
    public Task List_OnPostgres_ByPredictedClassAfterACursor_IsAnIndexRange() =>
        WithListScanAsync(source: null, predictedClass: "glass", cursor: Cursor(Start, Guid.NewGuid()), scan =>
        {
            // The class and the cursor's created_at bound the walk; only ties on created_at are left to the filter.
            Assert.True(scan.Line.Contains("ix_classifications_predicted_class_created_at_id") && scan.Condition.Contains("created_at <="), scan.Plan);
        });

    [IntegrationFact]
    public Task List_OnPostgres_PredictedClassIndex_LeavesOutRowsWithoutAClass() => PartialIndexAsync(DatabaseProviders.Postgres);

    [Fact]
    public Task List_OnSqlite_ByPredictedClass_WalksItsIndexWhichLeavesOutRowsWithoutAClass() => PartialIndexAsync(DatabaseProviders.Sqlite);

    /// <summary>
    /// The class index is partial: queued, processing and failed rows (no class) are never listed by class, and entries for
    /// them cost the worker's hot path index writes. On SQLite the list by class still walks it (PostgreSQL: the test above).
    /// </summary>
    private static async Task PartialIndexAsync(string provider)
    {
        const string index = "ix_classifications_predicted_class_created_at_id";
        var commands = new LastCommand();
        await ProviderDatabases.WithDatabaseAsync(provider, "wc-list-partial", async newContext =>
        {
            await using var db = newContext();
            var definition = await db.Database.SqlQueryRaw<string>(provider == DatabaseProviders.Postgres
                ? $"SELECT indexdef AS \"Value\" FROM pg_indexes WHERE indexname = '{index}'"
                : $"SELECT sql AS \"Value\" FROM sqlite_master WHERE name = '{index}'").SingleAsync();
            Assert.Matches(@"WHERE \(?predicted_class IS NOT NULL\)?$", definition);
            if (provider != DatabaseProviders.Sqlite) return;

            Assert.IsType<Ok<ClassificationPage>>(await ClassificationsApi.ListAsync(db, Registry(db), source: null, status: null, limit: 50, cursor: null, "glass", CancellationToken.None));
            var connection = db.Database.GetDbConnection();
            await connection.OpenAsync();
            await using var explain = connection.CreateCommand();
            explain.CommandText = "EXPLAIN QUERY PLAN " + commands.Text;
            foreach (var (name, value) in commands.Parameters)
            {
                var parameter = explain.CreateParameter();
                parameter.ParameterName = name;
                parameter.Value = value;
                explain.Parameters.Add(parameter);
            }
            var plan = new List<string>();
            await using (var reader = await explain.ExecuteReaderAsync())
                while (await reader.ReadAsync()) plan.Add(reader.GetString(3));
            Assert.True(plan.Any(l => l.Contains($"INDEX {index} (predicted_class=?", StringComparison.Ordinal)), string.Join('\n', plan));
        }, commands);
    }

    /// <summary>Lists on an empty PostgreSQL database with the filters given, and hands the plan's scan of classifications to <paramref name="check"/>.</summary>
    private static Task WithListScanAsync(string? source, string? predictedClass, string? cursor, Action<Scan> check)
    {
        var commands = new LastCommand();
        return ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-list-plan", async newContext =>
        {
            await using (var db = newContext())
            {
                var result = await ClassificationsApi.ListAsync(db, Registry(db), source, status: null, limit: 50, cursor, predictedClass, CancellationToken.None);
                Assert.IsType<Ok<ClassificationPage>>(result);
            }
            check(await IndexScanAsync(newContext, commands));
        }, commands);
    }

    /// <summary>Every page's ids, following next_cursor to the end.</summary>
    private static async Task<List<Guid>> AllPagesAsync(Func<ClassifierDbContext> newContext, int limit, string? source, string? predictedClass)
    {
        var ids = new List<Guid>();
        string? cursor = null;
        do
        {
            await using var db = newContext();
            var result = await ClassificationsApi.ListAsync(db, Registry(db), source, status: null, limit, cursor, predictedClass, CancellationToken.None);
            var page = Assert.IsType<Ok<ClassificationPage>>(result).Value!;
            Assert.True(page.Items.Count <= limit);
            ids.AddRange(page.Items.Select(i => i.Id));
            cursor = page.NextCursor;
            Assert.True(ids.Count <= 100, "the pages do not end");
        }
        while (cursor is not null);
        return ids;
    }

    /// <summary>
    /// The list query's scan of classifications in PostgreSQL's plan: the scan line and its Index Cond. Sequential, bitmap
    /// scans and sorts are turned off for the plan, so an empty table's costs cannot choose for the index: only whether the
    /// query lets the index bound the walk shows.
    /// </summary>
    private static async Task<Scan> IndexScanAsync(Func<ClassifierDbContext> newContext, LastCommand commands)
    {
        await using var db = newContext();
        var connection = db.Database.GetDbConnection();
        await connection.OpenAsync();
        await using (var settings = connection.CreateCommand())
        {
            settings.CommandText = "SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off";
            await settings.ExecuteNonQueryAsync();
        }
        await using var explain = connection.CreateCommand();
        explain.CommandText = "EXPLAIN " + commands.Text;
        foreach (var (name, value) in commands.Parameters)
        {
            var parameter = explain.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = value;
            explain.Parameters.Add(parameter);
        }
        var plan = new List<string>();
        await using (var reader = await explain.ExecuteReaderAsync())
            while (await reader.ReadAsync()) plan.Add(reader.GetString(0));

        var at = plan.FindIndex(l => l.Contains("Index Scan") && l.Contains(" on classifications"));
        Assert.True(at >= 0, "no index scan of classifications:\n" + string.Join('\n', plan));
        var condition = plan.Skip(at + 1).TakeWhile(l => !l.Contains("->")).FirstOrDefault(l => l.Contains("Index Cond:")) ?? "";
        return new Scan(plan[at], condition, string.Join('\n', plan));
    }

    /// <summary>The scan line, its Index Cond line (empty when none) and the whole plan (for a failure's message).</summary>
    private sealed record Scan(string Line, string Condition, string Plan);

    private static Classification Row(StoredImage image, DateTime createdAt, string predictedClass, string? source) =>
        Row(image, createdAt, predictedClass, source, createdAt);

    private static Classification Row(StoredImage image, DateTime createdAt, string predictedClass, string? source, DateTime? completedAt) => new()
    {
        Id = Guid.NewGuid(),
        Image = image,
        Source = source,
        Status = ClassificationStatus.Completed,
        CreatedAt = createdAt,
        CompletedAt = completedAt,
        PredictedClass = predictedClass,
    };

    /// <summary>The registry the list asks for the model's classes (no file of it is read: its store is a folder never written).</summary>
    private static ModelRegistry Registry(ClassifierDbContext db) =>
        new(db, new FileSystemObjectStore(Path.Combine(Path.GetTempPath(), "wc-list-unused")), publisher: null!, new ModelOptions(), TimeProvider.System,
            NullLogger<ModelRegistry>.Instance);

    /// <summary>A cursor as the list writes it: base64url of "ticks:id".</summary>
    private static string Cursor(DateTime createdAt, Guid id) =>
        Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{createdAt.Ticks}:{id}")).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
