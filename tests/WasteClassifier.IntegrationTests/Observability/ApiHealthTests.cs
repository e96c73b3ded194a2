using System.Data.Common;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using WasteClassifier.Infrastructure.Persistence;
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
        var passed = false;
        try
        {
            using var http = api.CreateClient();
            await HealthProbes.UntilHealthyAsync(http, "/health", "components", "database");

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

            passed = true;
        }
        finally
        {
            await HealthProbes.CleanUpAsync(passed, () => AdministerAsync($"ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS true"),
                async () => await api.DisposeAsync(), () => TestServices.DropDatabaseAsync(connectionString));
        }
    }

    /// <summary>
    /// GET /health during a database outage does not read the model registry: through EF's retrying strategy that read held
    /// the answer ~15 s (6 tries to connect), past a monitor's timeout, to learn what the database check already said.
    /// Counted as the connections EF tries to open for the request, not timed (the database check opens its own, outside EF).
    /// </summary>
    [IntegrationFact]
    public async Task Health_DatabaseRefusingConnections_RegistryNotRead()
    {
        var opens = new HealthRequestOpens();
        var connectionString = await TestServices.CreateDatabaseAsync("wc_health_noread");
        var database = new NpgsqlConnectionStringBuilder(connectionString).Database!;
        var api = OnOwnDatabase(connectionString, "noread", services =>
        {
            services.ConfigureDbContext<ClassifierDbContext>(options => options.AddInterceptors(opens));
            services.AddSingleton<IStartupFilter>(opens);
        });
        var passed = false;
        try
        {
            using var http = api.CreateClient();
            await HealthProbes.UntilHealthyAsync(http, "/health", "components", "database");
            Assert.True(opens.Opens > 0, "the registry's read opens a connection through EF while the database is up");

            await AdministerAsync($"ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS false",
                $"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'");
            NpgsqlConnection.ClearAllPools();
            var before = opens.Opens;
            var response = await http.GetAsync("/health");
            var text = await response.Content.ReadAsStringAsync();

            Assert.True(response.StatusCode == HttpStatusCode.OK, text);
            using var json = JsonDocument.Parse(text);
            Assert.Equal("unhealthy", json.RootElement.GetProperty("components").GetProperty("database").GetProperty("status").GetString());
            Assert.Equal(0, opens.Opens - before);

            passed = true;
        }
        finally
        {
            await HealthProbes.CleanUpAsync(passed, () => AdministerAsync($"ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS true"),
                async () => await api.DisposeAsync(), () => TestServices.DropDatabaseAsync(connectionString));
        }
    }

    /// <summary>
    /// The database check passes but the registry's read fails (the database went away between the two, say): GET /health
    /// tries it once and answers, where EF's strategy tried it 6 times over ~15 s.
    /// </summary>
    [IntegrationFact]
    public async Task Health_RegistryReadFailing_TriedOnce()
    {
        var registry = new RegistryReads();
        var connectionString = await TestServices.CreateDatabaseAsync("wc_health_once");
        // The in-process worker's model watcher reads the registry at start, then not for an hour, and the training-job sweeper
        // (whose queries name the models table too) waits a day before its first sweep: every later read is a request's.
        var api = OnOwnDatabase(connectionString, "once", services => services.ConfigureDbContext<ClassifierDbContext>(options => options.AddInterceptors(registry)),
            ("Model:RefreshSeconds", "3600"), ("Training:SweepSeconds", "86400"));
        try
        {
            using var http = api.CreateClient();
            await WaitForModelAsync(http);

            registry.Failing = true;
            var before = registry.Reads;
            var response = await http.GetAsync("/health");
            var text = await response.Content.ReadAsStringAsync();

            Assert.True(response.StatusCode == HttpStatusCode.OK, text);
            using var json = JsonDocument.Parse(text);
            Assert.Equal("healthy", json.RootElement.GetProperty("components").GetProperty("database").GetProperty("status").GetString());
            Assert.Equal(1, registry.Reads - before);
        }
        finally
        {
            registry.Failing = false;
            await api.DisposeAsync();
            await TestServices.DropDatabaseAsync(connectionString);
        }
    }

    /// <summary>
    /// A database host that takes connections and never answers (packets dropped, not refused): GET /health answers once
    /// the database check's limit has passed, naming the database, where it waited for Npgsql's own timeouts (15 s to
    /// connect, 30 s for a command on a pooled connection). The bound is that 15 s, not the 3 s limit: a loaded machine is slow.
    /// </summary>
    [IntegrationFact]
    public async Task Health_DatabaseHostSilent_AnswersWithinItsLimitNamingTheDatabase()
    {
        var connectionString = await TestServices.CreateDatabaseAsync("wc_health_silent");
        var real = new NpgsqlConnectionStringBuilder(connectionString);
        var relay = new SilentRelay(real.Host!, real.Port);
        var api = new ApiFactory(new Dictionary<string, string?>
        {
            ["DataDirectory"] = Path.Combine(_directory, "silent-db"),
            ["Database:Provider"] = "postgres",
            ["Database:ConnectionString"] = new NpgsqlConnectionStringBuilder(connectionString) { Host = "127.0.0.1", Port = relay.Port }.ConnectionString,
            ["Worker:Id"] = "health-silent-db-worker",
            ["Health:CheckTimeoutSeconds"] = "3",
        });
        var passed = false;
        try
        {
            using var http = api.CreateClient();
            await HealthProbes.UntilHealthyAsync(http, "/health", "components", "database");

            relay.Silence();
            var (health, ready) = await WithinNpgsqlConnectTimeoutAsync(http);
            using var healthBody = health;
            using var readyBody = ready;

            var database = health.RootElement.GetProperty("components").GetProperty("database");
            Assert.Equal("unhealthy", database.GetProperty("status").GetString());
            Assert.Equal("the database did not answer within 3 s", database.GetProperty("detail").GetString());
            var check = ready.RootElement.GetProperty("checks").GetProperty("database");
            Assert.Equal("unhealthy", check.GetProperty("status").GetString());
            Assert.Equal("the database did not answer within 3 s", check.GetProperty("description").GetString());
            Assert.Equal("healthy", ready.RootElement.GetProperty("checks").GetProperty("object_store").GetProperty("status").GetString());

            passed = true;
        }
        finally
        {
            // The relay first: its sockets closed, whatever still waits on the database fails at once and the API stops.
            await HealthProbes.CleanUpAsync(passed, async () => await relay.DisposeAsync(), async () => await api.DisposeAsync(), () => TestServices.DropDatabaseAsync(connectionString));
        }
    }

    /// <summary>
    /// An S3 server that takes connections and never answers: GET /health answers once the object store check's limit has
    /// passed, naming the object store, where it waited for the S3 client's 30 s.
    /// </summary>
    [IntegrationFact]
    public async Task Health_ObjectStoreSilent_AnswersWithinItsLimitNamingTheObjectStore()
    {
        var endpoints = await TestServices.GetAsync();
        var relay = SilentRelay.To(endpoints.S3Endpoint);
        // wc-store-*: start-services.sh removes such buckets later.
        var api = new ApiFactory(new Dictionary<string, string?>
        {
            ["DataDirectory"] = Path.Combine(_directory, "silent-store"),
            ["ObjectStore:Provider"] = "minio",
            ["ObjectStore:Endpoint"] = relay.Endpoint,
            ["ObjectStore:AccessKey"] = endpoints.S3AccessKey,
            ["ObjectStore:SecretKey"] = endpoints.S3SecretKey,
            ["ObjectStore:Bucket"] = $"wc-store-health-{TestServices.NewSuffix()}",
            ["Worker:Id"] = "health-silent-store-worker",
            ["Health:CheckTimeoutSeconds"] = "3",
        });
        var passed = false;
        try
        {
            using var http = api.CreateClient();
            await HealthProbes.UntilHealthyAsync(http, "/health", "components", "object_store");

            relay.Silence();
            var (health, ready) = await WithinNpgsqlConnectTimeoutAsync(http);
            using var healthBody = health;
            using var readyBody = ready;

            var store = health.RootElement.GetProperty("components").GetProperty("object_store");
            Assert.Equal("unhealthy", store.GetProperty("status").GetString());
            Assert.Equal("the object store did not answer within 3 s", store.GetProperty("detail").GetString());
            Assert.Equal("healthy", health.RootElement.GetProperty("components").GetProperty("database").GetProperty("status").GetString());
            var check = ready.RootElement.GetProperty("checks").GetProperty("object_store");
            Assert.Equal("the object store did not answer within 3 s", check.GetProperty("description").GetString());

            passed = true;
        }
        finally
        {
            await HealthProbes.CleanUpAsync(passed, async () => await relay.DisposeAsync(), async () => await api.DisposeAsync());
        }
    }

    /// <summary>
    /// GET /health (200 with the outage in its body) and GET /health/ready (503), each answered before Npgsql's 15 s connect
    /// timeout: far above the 3 s limit the tests set, so a loaded machine passes, and below every driver timeout a check
    /// without a limit of its own waited for.
    /// </summary>
    private static async Task<(JsonDocument Health, JsonDocument Ready)> WithinNpgsqlConnectTimeoutAsync(HttpClient http)
    {
        var bound = TimeSpan.FromSeconds(14);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var health = await http.GetAsync("/health");
        var healthTook = clock.Elapsed;
        var healthText = await health.Content.ReadAsStringAsync();
        clock.Restart();
        var ready = await http.GetAsync("/health/ready");
        var readyTook = clock.Elapsed;
        var readyText = await ready.Content.ReadAsStringAsync();

        Assert.True(health.StatusCode == HttpStatusCode.OK, healthText);
        Assert.True(healthTook < bound, $"GET /health took {healthTook.TotalSeconds:F1} s: {healthText}");
        Assert.True(ready.StatusCode == HttpStatusCode.ServiceUnavailable, readyText);
        Assert.True(readyTook < bound, $"GET /health/ready took {readyTook.TotalSeconds:F1} s: {readyText}");
        var json = JsonDocument.Parse(healthText);
        Assert.Equal("unhealthy", json.RootElement.GetProperty("status").GetString());
        return (json, JsonDocument.Parse(readyText));
    }

    /// <summary>An API on its own PostgreSQL database, with <paramref name="services"/> added.</summary>
    private ApiFactory OnOwnDatabase(string connectionString, string name, Action<IServiceCollection> services, params (string Key, string Value)[] extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["DataDirectory"] = Path.Combine(_directory, name),
            ["Database:Provider"] = "postgres",
            ["Database:ConnectionString"] = connectionString,
            ["Worker:Id"] = $"health-{name}-worker",
        };
        foreach (var (key, value) in extra) settings[key] = value;
        return new ApiFactory(settings, services);
    }

    /// <summary>Until the in-process worker has loaded its model, so its start-up read of the registry is over.</summary>
    private static Task WaitForModelAsync(HttpClient http) => new ClassifierClient(http).WaitForModelAsync();

    /// <summary>Counts the connections EF tries to open while it serves a GET /health (marked by a middleware in front of all).</summary>
    private sealed class HealthRequestOpens : DbConnectionInterceptor, IStartupFilter
    {
        private static readonly AsyncLocal<bool> InHealthRequest = new();
        private int _opens;

        public int Opens => Volatile.Read(ref _opens);

        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, following) =>
            {
                InHealthRequest.Value = context.Request.Path == "/health";
                await following(context);
            });
            next(app);
        };

        public override InterceptionResult ConnectionOpening(DbConnection connection, ConnectionEventData eventData, InterceptionResult result)
        {
            Count();
            return result;
        }

        public override ValueTask<InterceptionResult> ConnectionOpeningAsync(DbConnection connection, ConnectionEventData eventData, InterceptionResult result,
            CancellationToken cancellationToken = default)
        {
            Count();
            return ValueTask.FromResult(result);
        }

        private void Count()
        {
            if (InHealthRequest.Value) Interlocked.Increment(ref _opens);
        }
    }

    /// <summary>Counts the statements EF prepares that read the model registry (each try of a read prepares one); while
    /// <see cref="Failing"/>, they fail as on a connection that timed out.</summary>
    private sealed class RegistryReads : DbCommandInterceptor
    {
        private int _reads;
        private volatile bool _failing;

        public bool Failing
        {
            get => _failing;
            set => _failing = value;
        }

        public int Reads => Volatile.Read(ref _reads);

        public override DbCommand CommandInitialized(CommandEndEventData eventData, DbCommand result)
        {
            if (ReadsRegistry(result)) Interlocked.Increment(ref _reads);
            return result;
        }

        public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default) =>
            _failing && ReadsRegistry(command) ? throw new TimeoutException("the database did not answer") : ValueTask.FromResult(result);

        // Initialized: its text is set by then.
        private static bool ReadsRegistry(DbCommand command) =>
            command.CommandText.Contains("FROM models", StringComparison.OrdinalIgnoreCase) || command.CommandText.Contains("FROM \"models\"", StringComparison.Ordinal);
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
