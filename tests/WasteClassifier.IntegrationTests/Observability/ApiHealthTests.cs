using System.Net;
using System.Text.Json;
using Npgsql;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Observability;

/// <summary>The API's probes answer the same JSON as the worker's: each check's status and a description safe to show.</summary>
public sealed class ApiHealthTests : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", "health-" + Guid.NewGuid().ToString("N"));
    private ApiFactory _factory = null!;

    private string Objects => Path.Combine(_directory, "store-" + "secret-folder-name");

    public Task InitializeAsync()
    {
        _factory = new ApiFactory(new Dictionary<string, string?>
        {
            ["DataDirectory"] = _directory,
            ["ObjectStore:Root"] = Objects,
            ["Worker:Id"] = "health-worker",
        });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _factory.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // SQLite may still hold its file for a moment.
        }
    }

    [Fact]
    public async Task Ready_ObjectStoreFolderRemoved_503NamingTheCheckWithASafeDescription()
    {
        using var http = _factory.CreateClient();
        Assert.True(Directory.Exists(Objects), "the API creates its store folder at start");
        Directory.Delete(Objects, recursive: true);

        var response = await http.GetAsync("/health/ready");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        using var json = JsonDocument.Parse(text);
        Assert.Equal("unhealthy", json.RootElement.GetProperty("status").GetString());
        var store = json.RootElement.GetProperty("checks").GetProperty("object_store");
        Assert.Equal("unhealthy", store.GetProperty("status").GetString());
        Assert.Equal("the object store folder is missing", store.GetProperty("description").GetString());
        Assert.True(store.GetProperty("duration_ms").GetDouble() >= 0);
        var database = json.RootElement.GetProperty("checks").GetProperty("database");
        Assert.Equal("healthy", database.GetProperty("status").GetString());
        // The server's folders are not the client's business: the log has them.
        Assert.DoesNotContain("secret-folder-name", text);
        Assert.DoesNotContain(_directory, text);
        Assert.DoesNotContain("secret-folder-name", await http.GetStringAsync("/health"));
    }

    /// <summary>
    /// GET /health during a database outage: still 200, and the outage in its body (README, "The original API"). The
    /// outage is this test's own database refusing connections, not the shared server stopped: no other test notices.
    /// </summary>
    [IntegrationFact]
    public async Task Health_DatabaseRefusingConnections_200ReportingTheOutageInItsBody()
    {
        var connectionString = await TestServices.CreateDatabaseAsync("wc_health_down");
        var database = new NpgsqlConnectionStringBuilder(connectionString).Database!;
        var api = new ApiFactory(new Dictionary<string, string?>
        {
            ["DataDirectory"] = Path.Combine(_directory, "down"),
            ["Database:Provider"] = "postgres",
            ["Database:ConnectionString"] = connectionString,
            ["Worker:Id"] = "health-down-worker",
        });
        try
        {
            using var http = api.CreateClient();
            using (var before = JsonDocument.Parse(await http.GetStringAsync("/health")))
                Assert.Equal("healthy", before.RootElement.GetProperty("components").GetProperty("database").GetProperty("status").GetString());

            await AdministerAsync($"ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS false",
                $"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'");
            // The API's idle connections were ended with their sessions: the next use opens a new one, which is refused.
            NpgsqlConnection.ClearAllPools();

            var response = await http.GetAsync("/health");
            var text = await response.Content.ReadAsStringAsync();

            Assert.True(response.StatusCode == HttpStatusCode.OK, text);
            using var json = JsonDocument.Parse(text);
            Assert.Equal("unhealthy", json.RootElement.GetProperty("status").GetString());
            var component = json.RootElement.GetProperty("components").GetProperty("database");
            Assert.Equal("unhealthy", component.GetProperty("status").GetString());
            // PostgreSQL's 55000: the database does not accept connections now.
            Assert.Equal("the database is unreachable (PostgresException: 55000)", component.GetProperty("detail").GetString());
            Assert.DoesNotContain(database, text);
        }
        finally
        {
            await AdministerAsync($"ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS true");
            await api.DisposeAsync();
            await TestServices.DropDatabaseAsync(connectionString);
        }
    }

    /// <summary>Runs statements on the server's maintenance database, outside the one under test.</summary>
    private static async Task AdministerAsync(params string[] statements)
    {
        await using var connection = new NpgsqlConnection((await TestServices.GetAsync()).PostgresConnectionString);
        await connection.OpenAsync();
        foreach (var statement in statements)
        {
            await using var command = new NpgsqlCommand(statement, connection);
            await command.ExecuteNonQueryAsync();
        }
    }

    [Fact]
    public async Task Live_AnswersJsonWithNoChecks()
    {
        using var http = _factory.CreateClient();

        var response = await http.GetAsync("/health/live");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("healthy", json.RootElement.GetProperty("status").GetString());
        Assert.Empty(json.RootElement.GetProperty("checks").EnumerateObject());
    }
}
