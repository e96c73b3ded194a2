using System.Globalization;
using System.Text.RegularExpressions;
using Npgsql;

namespace WasteClassifier.Bench;

/// <summary>One API process and N worker processes on a fresh database, bucket and queue; torn down on dispose.</summary>
public sealed class Deployment : IDisposable
{
    private readonly List<ServiceProcess> _workers = [];

    public required ServiceProcess Api { get; init; }
    public required string AdminConnectionString { get; init; }
    public required string Database { get; init; }
    public required Uri Url { get; init; }

    /// <summary>The folder the filesystem control (<c>BENCH_OBJECT_STORE=filesystem</c>) stores objects in; null on the S3 server.</summary>
    public string? ObjectFolder { get; init; }
    public IReadOnlyList<ServiceProcess> Workers => _workers;

    /// <summary>
    /// The services' connection string. Debian's PostgreSQL has TLS on, so Npgsql's default (<c>SSL Mode=Prefer</c>) would
    /// encrypt every query on loopback, which the Compose file's PostgreSQL (no TLS) does not: on this machine that cost
    /// 0.3-0.5 CPU ms per image in PostgreSQL and about as much in the API. A connection string that sets an SSL mode keeps it.
    /// </summary>
    public static string ServiceConnectionString(string connectionString, string database)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { Database = database };
        var loopback = builder.Host is "localhost" or "127.0.0.1" or "::1" || builder.Host?.StartsWith('/') == true;
        if (loopback && !Regex.IsMatch(connectionString, @"ssl\s*mode", RegexOptions.IgnoreCase))
            builder.SslMode = SslMode.Disable;
        return builder.ConnectionString;
    }

    public static async Task<Deployment> StartAsync(BenchSettings settings, int workers, int port, string logDirectory)
    {
        var suffix = Guid.NewGuid().ToString("N")[..10];
        var database = $"wc_bench_{suffix}";
        await using (var connection = new NpgsqlConnection(settings.PostgresConnectionString))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{database}\"", connection);
            await create.ExecuteNonQueryAsync();
        }
        var environment = new Dictionary<string, string>
        {
            ["Database__Provider"] = "postgres",
            ["Database__ConnectionString"] = ServiceConnectionString(settings.PostgresConnectionString, database),
            ["Messaging__Transport"] = "rabbitmq",
            ["Messaging__RabbitMq__Host"] = settings.RabbitHost,
            // The run's own: queue names alone do not keep out the events of other deployments on the broker (the tests',
            // another benchmark's), which go to exchanges named after their message type.
            ["Messaging__RabbitMq__VirtualHost"] = settings.RabbitVirtualHost,
            // tests/tooling/start-services.sh removes leftovers by this shape: classify-bench- and 10 hex digits.
            ["Messaging__ClassifyQueue"] = $"classify-bench-{suffix}",
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            // Each worker gets a metrics port of its own (below); the API serves /metrics on its own port.
            ["Metrics__Host"] = "127.0.0.1",
        };
        string? objectFolder = null;
        if (settings.ObjectStore == "filesystem")
        {
            // The control: API and workers share a local folder instead of the S3 server.
            environment["ObjectStore__Provider"] = "filesystem";
            objectFolder = Path.Combine(Path.GetTempPath(), $"wc-bench-{suffix}");
            environment["ObjectStore__Root"] = objectFolder;
        }
        else
        {
            environment["ObjectStore__Provider"] = "minio";
            environment["ObjectStore__Endpoint"] = settings.S3Endpoint;
            environment["ObjectStore__AccessKey"] = settings.S3AccessKey;
            environment["ObjectStore__SecretKey"] = settings.S3SecretKey;
            environment["ObjectStore__Bucket"] = $"wc-bench-{suffix}";
        }
        var url = new Uri($"http://127.0.0.1:{port}/");
        var api = ServiceProcess.Start(settings.ApiDll, new Dictionary<string, string>(environment) { ["Urls"] = url.ToString().TrimEnd('/') },
            Path.Combine(logDirectory, $"api-{workers}w.log"));
        var deployment = new Deployment { Api = api, Url = url, AdminConnectionString = settings.PostgresConnectionString, Database = database, ObjectFolder = objectFolder };
        try
        {
            await WaitReadyAsync(url);
            for (var i = 0; i < workers; i++)
            {
                // As deployed, each worker has its metrics listener: the benchmark reads the model's own time there.
                var metricsPort = port + 100 + i;
                deployment._workers.Add(ServiceProcess.Start(settings.WorkerDll,
                    // The API has migrated the database already.
                    new Dictionary<string, string>(environment)
                    {
                        ["Worker__Id"] = $"bench-worker-{i + 1}",
                        ["Database__MigrateOnStartup"] = "false",
                        ["Metrics__Port"] = metricsPort.ToString(CultureInfo.InvariantCulture),
                    },
                    Path.Combine(logDirectory, $"worker-{workers}w-{i + 1}.log"), new Uri($"http://127.0.0.1:{metricsPort}/metrics")));
            }
            await Task.Delay(TimeSpan.FromSeconds(3));
            if (deployment._workers.FirstOrDefault(w => w.HasExited) is { } dead)
                throw new InvalidOperationException($"worker process {dead.Id} exited at start; see {logDirectory}");
            return deployment;
        }
        catch
        {
            deployment.Dispose();
            throw;
        }
    }

    private static async Task WaitReadyAsync(Uri url)
    {
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if ((await http.GetAsync("health/ready")).IsSuccessStatusCode) return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // still starting
            }
            await Task.Delay(500);
        }
        throw new TimeoutException($"the API at {url} was not ready within 120 s");
    }

    public void Dispose()
    {
        foreach (var worker in _workers) worker.Dispose();
        Api.Dispose();
        // The servers outlive the benchmark: drop its database (the queue goes at the next start-services.sh). A failure
        // here is only reported: thrown from Dispose, it would hide whatever ended the run.
        try
        {
            using var connection = new NpgsqlConnection(AdminConnectionString);
            connection.Open();
            using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{Database}\" WITH (FORCE)", connection);
            drop.ExecuteNonQuery();
        }
        catch (NpgsqlException e)
        {
            Console.Error.WriteLine($"could not drop the benchmark's database {Database}: {e.Message}");
        }
        // The filesystem control's objects (0.3–0.5 GB a run); the S3 server's buckets go at the next start-services.sh.
        try
        {
            if (ObjectFolder is not null && Directory.Exists(ObjectFolder)) Directory.Delete(ObjectFolder, recursive: true);
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"could not remove the benchmark's object folder {ObjectFolder}: {e.Message}");
        }
    }
}
