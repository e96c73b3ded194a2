using System.Data.Common;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.AspNetCore.TestHost;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Api.Extensions;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>
/// How <c>/openapi/v1.json</c> is served: it was rebuilt for every request (tens of ms of CPU, outside the rate limit),
/// and its server URL was the request's scheme and Host. Each test runs its own process: they count its builds or set its
/// rate limit.
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

    [Fact]
    public async Task Document_BuiltOncePerProcess_SameBytesForEveryCaller()
    {
        var builds = 0;
        // A document transformer runs once per build: the count of builds, seen from outside.
        await using var api = Start().WithWebHostBuilder(b => b.ConfigureTestServices(s => s.Configure<OpenApiOptions>(OpenApiDocumentCache.DocumentName,
            o => o.AddDocumentTransformer((_, _, _) =>
            {
                Interlocked.Increment(ref builds);
                return Task.CompletedTask;
            }))));
        var http = api.CreateClient();

        var first = await http.GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("application/json", first.Content.Headers.ContentType?.MediaType);
        var bytes = await first.Content.ReadAsByteArrayAsync();
        // Another Host, and what a TLS proxy would add: the same document, not built again.
        using var proxied = new HttpRequestMessage(HttpMethod.Get, "/openapi/v1.json") { Headers = { Host = "127.0.0.1:8443" } };
        proxied.Headers.Add("X-Forwarded-Proto", "https");
        proxied.Headers.Add("X-Forwarded-Host", "127.0.0.1:8443");
        var second = await http.SendAsync(proxied);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);

        Assert.Equal(bytes, await second.Content.ReadAsByteArrayAsync());
        Assert.Equal(1, Volatile.Read(ref builds));
        // Relative: a client resolves it against where it fetched the document, behind a proxy too.
        var servers = JsonNode.Parse(bytes)!["servers"]!.AsArray();
        Assert.Equal("""[{"url":"/"}]""", servers.ToJsonString());
    }

    /// <summary>The document, and the API reference page that shows it (it was outside the limit), each with its script.</summary>
    [Theory]
    [InlineData("/openapi/v1.json")]
    [InlineData("/scalar/v1")]
    [InlineData("/scalar/scalar.js")]
    public async Task DocumentAndReference_RateLimitedAsTheOtherReads(string path)
    {
        await using var api = Start(new() { ["RateLimit:ExemptLoopback"] = "false", ["RateLimit:Burst"] = "3", ["RateLimit:PerSecond"] = "1" });
        var http = api.CreateClient();
        // Sent together, not one after another: the bucket refills a token a second, and one by one a slow answer (the
        // script is large, and the machine may be busy) let it refill between them.
        var responses = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => http.GetAsync(path)));
        Assert.All(responses, r => Assert.True(r.StatusCode is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"{path}: {(int)r.StatusCode}"));
        var limited = responses.FirstOrDefault(r => r.StatusCode == HttpStatusCode.TooManyRequests);
        Assert.True(limited is not null, $"10 requests at once were all answered: {path} is outside the rate limit");
        Assert.True(limited.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        Assert.Equal("rate_limited", (await ClassifierClient.ReadJsonAsync(limited))["error"]!.GetValue<string>());
    }

    /// <summary>
    /// The routes that declare no 503 answer while the database is down (<c>/health</c> reports it in its body); one that
    /// reads the database answers the 503 it declares. The outage here fails EF's commands only: <c>/health</c>'s database
    /// check runs its own, which it does not reach, so what that body says in an outage is
    /// <see cref="Observability.ApiHealthTests.Health_DatabaseRefusingConnections_200ReportingTheOutageInItsBody"/>'s.
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
