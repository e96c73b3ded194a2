using System.Diagnostics;
using System.Text;
using RabbitMQ.Client;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Deployment;

/// <summary>
/// bench/rabbitmq-vhost.sh, which gives each bench/run.sh and bench/ab.sh run a virtual host of its own on the shared broker
/// (as the tests' servers are: rabbitmqctl as root on the CI machine).
/// </summary>
public sealed class BenchVirtualHostTests
{
    [IntegrationFact]
    public async Task Create_GivesTheRunAVirtualHostOfItsOwn_WhereEventsOnTheDefaultOneDoNotArrive_AndDeleteRemovesIt()
    {
        var endpoints = await TestServices.GetAsync();
        var name = $"wc-bench-{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}-{Random.Shared.Next(100_000)}";
        var (created, _) = await RunScriptAsync(Environment(endpoints), "create", name);
        try
        {
            Assert.Equal(name, created.Trim());
            // As an event is published: to an exchange named after the message type, which each deployment declares.
            var exchange = $"WasteClassifier.Contracts:ModelPromoted-{Guid.NewGuid():N}";
            await using var own = await Factory(endpoints, name).CreateConnectionAsync();
            await using var ownChannel = await own.CreateChannelAsync();
            await ownChannel.ExchangeDeclareAsync(exchange, ExchangeType.Fanout, durable: false, autoDelete: true);
            var ownQueue = (await ownChannel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
            await ownChannel.QueueBindAsync(ownQueue, exchange, "");

            await using var shared = await Factory(endpoints, "/").CreateConnectionAsync();
            await using var sharedChannel = await shared.CreateChannelAsync();
            await sharedChannel.ExchangeDeclareAsync(exchange, ExchangeType.Fanout, durable: false, autoDelete: true);
            var sharedQueue = (await sharedChannel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
            await sharedChannel.QueueBindAsync(sharedQueue, exchange, "");
            await sharedChannel.BasicPublishAsync(exchange, "", Encoding.UTF8.GetBytes("another deployment's promotion"));

            Assert.NotNull(await GetAsync(sharedChannel, sharedQueue));
            Assert.Null(await ownChannel.BasicGetAsync(ownQueue, autoAck: true));
        }
        finally
        {
            await RunScriptAsync(Environment(endpoints), "delete", name);
        }
        // Asked of the broker itself: right after the delete it may still accept a connection to the name.
        Assert.DoesNotContain(name, (await ListVirtualHostsAsync()).Split('\n').Select(l => l.Trim()));
    }

    [IntegrationFact]
    public async Task Create_WithNeitherRabbitmqctlNorTheManagementApi_FallsBackToTheDefaultWithAWarning()
    {
        var endpoints = await TestServices.GetAsync();
        // Another loopback address: rabbitmqctl reaches only the broker on this one, and nothing listens on port 9.
        var environment = new Dictionary<string, string?>(Environment(endpoints)) { ["WASTE_TEST_RABBITMQ_HOST"] = "127.0.0.2", ["RABBITMQ_MANAGEMENT_PORT"] = "9" };

        var (stdout, stderr) = await RunScriptAsync(environment, "create", $"wc-bench-{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}-1");

        Assert.Equal("/", stdout.Trim());
        Assert.Contains("WARNING: could not create the RabbitMQ virtual host", stderr);
    }

    private static Dictionary<string, string?> Environment(TestServices.Endpoints endpoints) => new()
    {
        ["WASTE_TEST_RABBITMQ_HOST"] = endpoints.RabbitHost,
        ["WASTE_TEST_RABBITMQ_USER"] = endpoints.RabbitUser,
        ["WASTE_TEST_RABBITMQ_PASSWORD"] = endpoints.RabbitPassword,
    };

    private static ConnectionFactory Factory(TestServices.Endpoints endpoints, string virtualHost) => new()
    {
        HostName = endpoints.RabbitHost,
        Port = endpoints.RabbitPort,
        UserName = endpoints.RabbitUser,
        Password = endpoints.RabbitPassword,
        VirtualHost = virtualHost,
    };

    private static async Task<string> ListVirtualHostsAsync()
    {
        using var process = Process.Start(new ProcessStartInfo("rabbitmqctl", ["-q", "list_vhosts", "name"]) { RedirectStandardOutput = true })!;
        var names = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
        Assert.True(process.ExitCode == 0, $"rabbitmqctl list_vhosts exited with {process.ExitCode}");
        return names;
    }

    private static async Task<BasicGetResult?> GetAsync(IChannel channel, string queue)
    {
        for (var i = 0; i < 50; i++)
        {
            if (await channel.BasicGetAsync(queue, autoAck: true) is { } message) return message;
            await Task.Delay(100);
        }
        return null;
    }

    private static async Task<(string Stdout, string Stderr)> RunScriptAsync(IReadOnlyDictionary<string, string?> environment, params string[] arguments)
    {
        var start = new ProcessStartInfo("bash") { WorkingDirectory = DeploymentTools.Root, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("bench/rabbitmq-vhost.sh");
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        foreach (var (key, value) in environment) start.Environment[key] = value;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
        Assert.True(process.ExitCode == 0, $"bench/rabbitmq-vhost.sh {string.Join(' ', arguments)} exited with {process.ExitCode}: {await stderr}");
        return (await stdout, await stderr);
    }
}
