using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Containers;
using Npgsql;
using RabbitMQ.Client;
using Testcontainers.PostgreSql;
using Testcontainers.RabbitMq;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>
/// Endpoints of RabbitMQ, PostgreSQL and the S3 server: from WASTE_TEST_* environment variables when set,
/// otherwise from containers started with Testcontainers when Docker is available.
/// </summary>
public static class TestServices
{
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static bool FromEnvironment => Environment.GetEnvironmentVariable("WASTE_TEST_POSTGRES") is not null;

    public static bool Available => FromEnvironment || DockerAvailable;

    private static bool DockerAvailable =>
        File.Exists("/var/run/docker.sock") || Environment.GetEnvironmentVariable("DOCKER_HOST") is not null;

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static Endpoints? _endpoints;

    public sealed record Endpoints(string RabbitHost, ushort RabbitPort, string RabbitUser, string RabbitPassword,
        string PostgresConnectionString, string S3Endpoint, string S3AccessKey, string S3SecretKey);

    public static async Task<Endpoints> GetAsync()
    {
        await Gate.WaitAsync();
        try
        {
            return _endpoints ??= FromEnvironment ? ReadEnvironment() : await StartContainersAsync();
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>A new, empty database for one fixture, so test classes never see each other's rows.</summary>
    public static async Task<string> CreateDatabaseAsync(string prefix)
    {
        var endpoints = await GetAsync();
        var name = $"{prefix}_{Guid.NewGuid():N}".ToLowerInvariant();
        await using var connection = new NpgsqlConnection(endpoints.PostgresConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await command.ExecuteNonQueryAsync();
        return new NpgsqlConnectionStringBuilder(endpoints.PostgresConnectionString) { Database = name }.ConnectionString;
    }

    /// <summary>
    /// Drops a database made by <see cref="CreateDatabaseAsync"/> when its fixture ends. The servers outlive the test run,
    /// so whatever a fixture leaves behind piles up run after run.
    /// </summary>
    public static async Task DropDatabaseAsync(string connectionString)
    {
        var database = new NpgsqlConnectionStringBuilder(connectionString).Database;
        await using var connection = new NpgsqlConnection((await GetAsync()).PostgresConnectionString);
        await connection.OpenAsync();
        // FORCE: a worker process that has not quite exited may still hold a connection.
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>A fixture's own name part, for its queue and bucket: 10 hex digits.</summary>
    public static string NewSuffix() => Guid.NewGuid().ToString("N")[..10];

    /// <summary>
    /// Settings that put a deployment on the real servers with a database, classify and train queues and bucket of its own:
    /// <c>wc_{name}_…</c>, <see cref="ClassifyQueue"/>, <see cref="TrainQueue"/> and <c>wc-{name}-…</c> (start-services.sh
    /// removes old buckets by that shape). Whoever asks drops the database and queues when done (<see cref="DropDatabaseAsync"/>,
    /// <see cref="DeleteClassifyQueuesAsync"/>, and <see cref="DeleteTrainQueueAsync"/> where the deployment trains).
    /// </summary>
    public static async Task<Dictionary<string, string?>> DeploymentSettingsAsync(string name)
    {
        var endpoints = await GetAsync();
        var suffix = NewSuffix();
        return new Dictionary<string, string?>
        {
            ["Database:Provider"] = "postgres",
            ["Database:ConnectionString"] = await CreateDatabaseAsync($"wc_{name}"),
            ["Messaging:Transport"] = "rabbitmq",
            ["Messaging:RabbitMq:Host"] = endpoints.RabbitHost,
            ["Messaging:RabbitMq:Port"] = endpoints.RabbitPort.ToString(),
            ["Messaging:RabbitMq:Username"] = endpoints.RabbitUser,
            ["Messaging:RabbitMq:Password"] = endpoints.RabbitPassword,
            ["Messaging:ClassifyQueue"] = ClassifyQueue(suffix),
            ["Messaging:TrainQueue"] = TrainQueue(suffix),
            ["ObjectStore:Provider"] = "minio",
            ["ObjectStore:Endpoint"] = endpoints.S3Endpoint,
            ["ObjectStore:AccessKey"] = endpoints.S3AccessKey,
            ["ObjectStore:SecretKey"] = endpoints.S3SecretKey,
            ["ObjectStore:Bucket"] = $"wc-{name}-{suffix}",
        };
    }

    /// <summary>
    /// A fixture's own classify queue. tests/tooling/start-services.sh knows this shape (classify-image- and the 10 hex
    /// digits of <see cref="NewSuffix"/>) to remove the queues an interrupted run left behind: change both together.
    /// </summary>
    public static string ClassifyQueue(string suffix) => $"classify-image-{suffix}";

    /// <summary>A fixture's own train queue; start-services.sh knows this shape too (train-model- and 10 hex digits).</summary>
    public static string TrainQueue(string suffix) => $"train-model-{suffix}";

    /// <summary>
    /// Deletes a fixture's classify queue when it ends, with the fault queue beside it and the error and skipped queues
    /// MassTransit may have added, and their exchanges. Thousands of leftover durable queues once made RabbitMQ hang at boot.
    /// </summary>
    public static Task DeleteClassifyQueuesAsync(string classifyQueue) => DeleteQueuesAsync(classifyQueue, $"{classifyQueue}-faults");

    /// <summary>Deletes a fixture's train queue when it ends, with the error and skipped queues MassTransit may have added, and their exchanges.</summary>
    public static Task DeleteTrainQueueAsync(string trainQueue) => DeleteQueuesAsync(trainQueue);

    /// <summary>A queue's ready messages (not those delivered and unacknowledged) and consumers, as the broker counts them now.</summary>
    public static async Task<(uint Ready, uint Consumers)> QueueCountsAsync(string queue)
    {
        await using var connection = await ConnectToBrokerAsync();
        await using var channel = await connection.CreateChannelAsync();
        var counts = await channel.QueueDeclarePassiveAsync(queue);
        return (counts.MessageCount, counts.ConsumerCount);
    }

    /// <summary>A connection to the test broker's clear port, for tests that arrange or inspect the broker's state directly.</summary>
    public static async Task<IConnection> ConnectToBrokerAsync()
    {
        var endpoints = await GetAsync();
        var factory = new ConnectionFactory
        {
            HostName = endpoints.RabbitHost,
            Port = endpoints.RabbitPort,
            UserName = endpoints.RabbitUser,
            Password = endpoints.RabbitPassword,
        };
        return await factory.CreateConnectionAsync();
    }

    private static async Task DeleteQueuesAsync(params string[] queues)
    {
        await using var connection = await ConnectToBrokerAsync();
        await using var channel = await connection.CreateChannelAsync();
        foreach (var queue in queues)
        {
            foreach (var name in new[] { queue, $"{queue}_error", $"{queue}_skipped" })
            {
                // RabbitMQ answers both for names that do not exist.
                await channel.QueueDeleteAsync(name, ifUnused: false, ifEmpty: false);
                await channel.ExchangeDeleteAsync(name, ifUnused: false);
            }
        }
    }

    private static Endpoints ReadEnvironment()
    {
        string Get(string name, string fallback) => Environment.GetEnvironmentVariable(name) ?? fallback;
        return new Endpoints(
            Get("WASTE_TEST_RABBITMQ_HOST", "localhost"), ushort.Parse(Get("WASTE_TEST_RABBITMQ_PORT", "5672")),
            Get("WASTE_TEST_RABBITMQ_USER", "guest"), Get("WASTE_TEST_RABBITMQ_PASSWORD", "guest"),
            Get("WASTE_TEST_POSTGRES", ""),
            Get("WASTE_TEST_S3_ENDPOINT", "localhost:9000"), Get("WASTE_TEST_S3_ACCESS_KEY", "S3RVER"), Get("WASTE_TEST_S3_SECRET_KEY", "S3RVER"));
    }

    private static async Task<Endpoints> StartContainersAsync()
    {
        var rabbit = new RabbitMqBuilder("rabbitmq:3.13-management").Build();
        var postgres = new PostgreSqlBuilder("postgres:15").Build();
        IContainer minio = new ContainerBuilder("minio/minio:RELEASE.2024-10-13T13-34-11Z")
            .WithCommand("server", "/data")
            .WithEnvironment("MINIO_ROOT_USER", "minioadmin")
            .WithEnvironment("MINIO_ROOT_PASSWORD", "minioadmin")
            .WithPortBinding(9000, true)
            .WithWaitStrategy(Wait.ForUnixContainer().UntilHttpRequestIsSucceeded(r => r.ForPath("/minio/health/live").ForPort(9000)))
            .Build();
        await Task.WhenAll(rabbit.StartAsync(), postgres.StartAsync(), minio.StartAsync());
        var amqp = new Uri(rabbit.GetConnectionString());
        var credentials = amqp.UserInfo.Split(':');
        return new Endpoints(amqp.Host, (ushort)amqp.Port, Uri.UnescapeDataString(credentials[0]), Uri.UnescapeDataString(credentials[1]),
            postgres.GetConnectionString(), $"{minio.Hostname}:{minio.GetMappedPublicPort(9000)}", "minioadmin", "minioadmin");
    }
}
