using System.Data.Common;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// GET /stats through HTTP on PostgreSQL with <c>Stats:CacheSeconds</c> on (the other tests run with 0): one computation
/// per replica, shared by concurrent callers and reused within the window, computed again after it, and a failed one not
/// kept. Computations are counted by the statement only StatsService runs (per worker, with batch sizes), not by timing.
/// </summary>
public sealed class StatsSnapshotsTests
{
    [IntegrationFact]
    public Task Stats_ConcurrentCallsWithinTheWindow_ShareOneComputation() => WithApiAsync("600", async (api, queries) =>
    {
        var http = api.CreateClient();
        queries.Hold();
        var first = http.GetAsync("/stats");
        await queries.Entered.WaitAsync(TimeSpan.FromSeconds(60));
        var others = Enumerable.Range(0, 7).Select(_ => http.GetAsync("/stats")).ToList();
        // Time for the others to join the computation held open; whether they join it or find its result, it is one.
        await Task.Delay(500);
        queries.Release();

        var answers = new List<JsonNode>();
        foreach (var response in await Task.WhenAll([first, .. others]).WaitAsync(TimeSpan.FromSeconds(60)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            answers.Add(JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
        }
        Assert.Single(answers.Select(GeneratedAt).Distinct());
        Assert.Equal(1, queries.Computations);

        // Within the window a new row is not seen: the same answer, no query.
        await AddCompletedAsync(api);
        var later = await GetStatsAsync(http);
        Assert.Equal(GeneratedAt(answers[0]), GeneratedAt(later));
        Assert.Equal(0, later["total_predictions"]!.GetValue<long>());
        Assert.Equal(1, queries.Computations);
    });

    [IntegrationFact]
    public Task Stats_AfterTheWindow_ComputesAgainAndSeesNewRows() => WithApiAsync("1", async (api, queries) =>
    {
        var http = api.CreateClient();
        var before = await GetStatsAsync(http);
        Assert.Equal(0, before["total_predictions"]!.GetValue<long>());
        await AddCompletedAsync(api);

        // Polled with a generous bound: the window is 1 s, however slow the machine.
        var seen = new HashSet<string> { GeneratedAt(before) };
        JsonNode after;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        do
        {
            await Task.Delay(200);
            after = await GetStatsAsync(http);
            seen.Add(GeneratedAt(after));
        } while (after["total_predictions"]!.GetValue<long>() == 0 && DateTime.UtcNow < deadline);

        Assert.Equal(1, after["total_predictions"]!.GetValue<long>());
        Assert.True(DateTime.Parse(GeneratedAt(after)).ToUniversalTime() > DateTime.Parse(GeneratedAt(before)).ToUniversalTime(), after.ToJsonString());
        // Each answer of another time was a computation of its own, and no computation went unanswered.
        Assert.Equal(seen.Count, queries.Computations);
    });

    [IntegrationFact]
    public Task Stats_FailedComputation_NotKept() => WithApiAsync("600", async (api, queries) =>
    {
        var http = api.CreateClient();
        queries.FailNext();

        var failed = await http.GetAsync("/stats");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
        await AddCompletedAsync(api);

        // The next call computes again (within the window), and sees the row added since.
        var stats = await GetStatsAsync(http);
        Assert.Equal(1, stats["total_predictions"]!.GetValue<long>());
        Assert.Equal(2, queries.Computations);
    });

    /// <summary>An API alone on a database of its own, with <paramref name="cacheSeconds"/> and the statement counter.</summary>
    private static async Task WithApiAsync(string cacheSeconds, Func<WebApplicationFactory<WasteClassifier.Api.ApiEntryPoint>, StatsQueries, Task> test)
    {
        var settings = await TestServices.DeploymentSettingsAsync("statscache");
        settings["Stats:CacheSeconds"] = cacheSeconds;
        var queries = new StatsQueries();
        try
        {
            await using var api = new ApiFactory(settings).WithWebHostBuilder(b =>
                b.ConfigureServices(s => s.ConfigureDbContext<ClassifierDbContext>(options => options.AddInterceptors(queries))));
            await test(api, queries);
        }
        finally
        {
            queries.Release();
            await TestServices.DeleteClassifyQueuesAsync(settings["Messaging:ClassifyQueue"]!);
            await TestServices.DeleteTrainQueueAsync(settings["Messaging:TrainQueue"]!);
            await TestServices.DropDatabaseAsync(settings["Database:ConnectionString"]!);
        }
    }

    private static async Task<JsonNode> GetStatsAsync(HttpClient http)
    {
        var response = await http.GetAsync("/stats");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        return JsonNode.Parse(body)!;
    }

    private static string GeneratedAt(JsonNode stats) => stats["generated_at"]!.GetValue<string>();

    private static async Task AddCompletedAsync(WebApplicationFactory<WasteClassifier.Api.ApiEntryPoint> api)
    {
        using var scope = api.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var now = DateTime.UtcNow;
        db.Classifications.Add(new Classification
        {
            Id = Guid.CreateVersion7(),
            Image = TestRows.Image("s", now),
            Status = ClassificationStatus.Completed,
            CreatedAt = now,
            CompletedAt = now,
            TotalMs = 10,
        });
        await db.SaveChangesAsync();
    }

    /// <summary>
    /// Counts StatsService's per-worker statement, run once per computation and by nothing else, and can hold it open (to
    /// make callers arrive during a computation) or fail it once (as a database that went away does).
    /// </summary>
    private sealed class StatsQueries : DbCommandInterceptor
    {
        private int _computations;
        private int _failNext;
        private volatile TaskCompletionSource _held = Done();
        private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Computations => Volatile.Read(ref _computations);

        public Task Entered => _entered.Task;

        public void Hold() => _held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release() => _held.TrySetResult();

        public void FailNext() => Volatile.Write(ref _failNext, 1);

        public override async ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        {
            if (!IsStats(command)) return result;
            Interlocked.Increment(ref _computations);
            _entered.TrySetResult();
            if (Interlocked.Exchange(ref _failNext, 0) == 1) throw new NpgsqlException("the database went away (test)");
            await _held.Task.WaitAsync(cancellationToken);
            return result;
        }

        public override InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result)
        {
            Assert.False(IsStats(command), "StatsService queries asynchronously");
            return result;
        }

        private static bool IsStats(DbCommand command) =>
            command.CommandText.Contains("worker_id", StringComparison.Ordinal) && command.CommandText.Contains("batch_size", StringComparison.Ordinal)
            && command.CommandText.Contains("GROUP BY", StringComparison.Ordinal);

        private static TaskCompletionSource Done()
        {
            var done = new TaskCompletionSource();
            done.SetResult();
            return done;
        }
    }
}
