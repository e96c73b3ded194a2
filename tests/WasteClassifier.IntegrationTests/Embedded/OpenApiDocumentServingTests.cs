using System.Data.Common;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>
/// What <c>/openapi/v1.json</c> declares, checked against a process of its own (its database taken down).
/// </summary>
public sealed class OpenApiDocumentServingTests : IDisposable
{
    private readonly List<string> _directories = [];

    private ApiFactory Start(Dictionary<string, string?>? extra = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", "openapi-" + Guid.NewGuid().ToString("N"));
        _directories.Add(directory);
        var settings = new Dictionary<string, string?> { ["DataDirectory"] = directory, ["Worker:Id"] = "openapi-worker" };
        foreach (var (key, value) in extra ?? []) settings[key] = value;
        return new ApiFactory(settings);
    }

    /// <summary>
    /// The routes that declare no 503 answer while the database is down (<c>/health</c> reports it in its body); one that
    /// reads the database answers the 503 it declares.
    /// </summary>
    [Fact]
    public async Task DatabaseDown_RoutesWithoutA503Answer_OneThatReadsItAnswersItsDeclared503()
    {
        var database = new DatabaseDown();
        await using var api = Start().WithWebHostBuilder(b =>
            b.ConfigureServices(s => s.ConfigureDbContext<ClassifierDbContext>(options => options.AddInterceptors(database))));
        var http = api.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/classes")).StatusCode); // started, and the database answered
        var document = JsonNode.Parse(await http.GetByteArrayAsync("/openapi/v1.json"))!;
        var declared = (string path) => document["paths"]![path]!["get"]!["responses"]!.AsObject().Select(r => r.Key).ToList();
        Assert.DoesNotContain("503", declared("/"));
        Assert.DoesNotContain("503", declared("/health"));
        Assert.Contains("503", declared("/classes"));

        database.Down = true;
        try
        {
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/")).StatusCode);
            var health = await http.GetAsync("/health");
            Assert.True(health.StatusCode == HttpStatusCode.OK, await health.Content.ReadAsStringAsync());
            var classes = await http.GetAsync("/classes");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, classes.StatusCode);
            Assert.Equal("service_unavailable", (await ClassifierClient.ReadJsonAsync(classes))["error"]!.GetValue<string>());
            Assert.True(database.Refused > 0);
        }
        finally
        {
            database.Down = false;
        }
    }

    public void Dispose()
    {
        foreach (var directory in _directories)
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
                // SQLite may still hold the file for a moment; the temp folder is disposable anyway.
            }
        }
    }

    /// <summary>While <see cref="Down"/>, every statement EF runs fails as on an unreachable database.</summary>
    private sealed class DatabaseDown : DbCommandInterceptor
    {
        private int _refused;
        private volatile bool _down;

        public bool Down
        {
            get => _down;
            set => _down = value;
        }

        public int Refused => Volatile.Read(ref _refused);

        public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default) => Check(result);

        public override ValueTask<InterceptionResult<object>> ScalarExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<object> result, CancellationToken cancellationToken = default) => Check(result);

        public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<int> result, CancellationToken cancellationToken = default) => Check(result);

        private ValueTask<T> Check<T>(T result)
        {
            if (!_down) return ValueTask.FromResult(result);
            Interlocked.Increment(ref _refused);
            throw new TimeoutException("the database is unreachable");
        }
    }
}
