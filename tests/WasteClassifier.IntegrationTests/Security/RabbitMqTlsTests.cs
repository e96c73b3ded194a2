using System.Collections.Concurrent;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.IntegrationTests.Fixtures;
using Xunit.Abstractions;

namespace WasteClassifier.IntegrationTests.Security;

/// <summary>
/// A test on RabbitMQ's TLS listener, which tests/tooling/start-services.sh opens (WASTE_TEST_RABBITMQ_TLS_PORT) with a
/// throwaway CA (WASTE_TEST_RABBITMQ_CA). Skipped without them outside CI only; on CI it runs and fails.
/// </summary>
public sealed class RabbitTlsFactAttribute : FactAttribute
{
    public RabbitTlsFactAttribute()
    {
        if (RabbitMqTlsTests.TlsPort is null && !TestServices.IsCi)
            Skip = "no WASTE_TEST_RABBITMQ_TLS_PORT: run tests/tooling/start-services.sh, which opens RabbitMQ's TLS listener";
    }
}

/// <summary>The bus on the real broker over TLS (Messaging:RabbitMq:UseTls): trusted through the CA file, and refused otherwise.</summary>
public sealed class RabbitMqTlsTests(ITestOutputHelper output)
{
    public static string? TlsPort => Environment.GetEnvironmentVariable("WASTE_TEST_RABBITMQ_TLS_PORT");

    private static string CaPath => Environment.GetEnvironmentVariable("WASTE_TEST_RABBITMQ_CA")
        ?? throw new InvalidOperationException("WASTE_TEST_RABBITMQ_CA is not set: run tests/tooling/start-services.sh");

    [RabbitTlsFact]
    public async Task Bus_OverTlsWithTheCaTrusted_PublishesAndConsumes()
    {
        var received = new TaskCompletionSource<Guid>(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new LogLines();
        var probeEndpoint = $"tls-probe-{TestServices.NewSuffix()}";
        var messageExchangeBefore = await ExchangeExistsAsync(ProbeMessageExchange);
        await using var provider = await BusServicesAsync(new() { ["Messaging:RabbitMq:CaCertificatePath"] = CaPath }, log, received, probeEndpoint);
        var bus = provider.GetRequiredService<IBusControl>();
        await bus.StartAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
        try
        {
            var id = Guid.NewGuid();
            // Sent straight to the probe's own temporary exchange: a publish would declare a durable exchange named after
            // the message type, which outlives the run on the shared broker.
            var endpoint = await bus.GetSendEndpoint(new Uri($"exchange:{probeEndpoint}?temporary=true"));
            await endpoint.Send(new TlsProbe(id));

            Assert.Equal(id, await received.Task.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.DoesNotContain(log.Lines, l => l.Contains("RabbitMQ TLS"));
        }
        finally
        {
            await bus.StopAsync();
        }
        // The run leaves the broker's exchanges as it found them (one left by an older version of this test stays).
        Assert.Equal(messageExchangeBefore, await ExchangeExistsAsync(ProbeMessageExchange));
    }

    /// <summary>The exchange MassTransit names after <see cref="TlsProbe"/>, which a publish or the consume topology would declare.</summary>
    private const string ProbeMessageExchange = "WasteClassifier.IntegrationTests.Security:RabbitMqTlsTests-TlsProbe";

    /// <summary>Whether the broker has the exchange, asked on the clear port (a passive declare of a missing one closes its channel).</summary>
    private static async Task<bool> ExchangeExistsAsync(string name)
    {
        await using var connection = await TestServices.ConnectToBrokerAsync();
        await using var channel = await connection.CreateChannelAsync();
        try
        {
            await channel.ExchangeDeclarePassiveAsync(name);
            return true;
        }
        catch (OperationInterruptedException e) when (e.ShutdownReason?.ReplyCode == 404)
        {
            return false;
        }
    }

    [RabbitTlsFact]
    public async Task Bus_OverTlsWithoutTheCa_DoesNotConnectAndLogsTheCertificateUntrusted()
    {
        var log = new LogLines();
        await using var provider = await BusServicesAsync([], log);

        await AssertNeverConnectsAsync(provider);

        var error = Assert.Single(log.Lines.Distinct(), l => l.StartsWith("RabbitMQ TLS"));
        output.WriteLine(error);
        Assert.Contains("is not trusted", error);
        Assert.Contains("UntrustedRoot", error);
        Assert.Contains("Set Messaging:RabbitMq:CaCertificatePath", error);
    }

    [RabbitTlsFact]
    public async Task Bus_OverTlsWithAWrongServerName_DoesNotConnectAndLogsTheNameMismatch()
    {
        var log = new LogLines();
        await using var provider = await BusServicesAsync(new()
        {
            ["Messaging:RabbitMq:CaCertificatePath"] = CaPath,
            ["Messaging:RabbitMq:ServerName"] = "not-the-broker.invalid",
        }, log);

        await AssertNeverConnectsAsync(provider);

        // The CA is trusted, so only the name is wrong; a trusted CA never excuses a wrong name.
        var error = Assert.Single(log.Lines.Distinct(), l => l.StartsWith("RabbitMQ TLS"));
        output.WriteLine(error);
        Assert.Contains("does not carry the name 'not-the-broker.invalid'", error);
        Assert.Contains("'localhost'", error);
    }

    /// <summary>The bus's start waits for its connection: it must give up, and the bus must not be healthy.</summary>
    private static async Task AssertNeverConnectsAsync(ServiceProvider provider)
    {
        var bus = provider.GetRequiredService<IBusControl>();
        using var giveUp = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await Assert.ThrowsAnyAsync<Exception>(() => bus.StartAsync(giveUp.Token).WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.NotEqual(BusHealthStatus.Healthy, bus.CheckHealth().Status);
        }
        finally
        {
            await bus.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
        }
    }

    private static async Task<ServiceProvider> BusServicesAsync(Dictionary<string, string?> tls, LogLines log,
        TaskCompletionSource<Guid>? received = null, string? probeEndpoint = null)
    {
        var endpoints = await TestServices.GetAsync();
        var settings = new Dictionary<string, string?>
        {
            ["Messaging:Transport"] = "rabbitmq",
            ["Messaging:RabbitMq:Host"] = endpoints.RabbitHost,
            ["Messaging:RabbitMq:Port"] = TlsPort ?? throw new InvalidOperationException(
                "WASTE_TEST_RABBITMQ_TLS_PORT is not set: run tests/tooling/start-services.sh, which opens RabbitMQ's TLS listener"),
            ["Messaging:RabbitMq:Username"] = endpoints.RabbitUser,
            ["Messaging:RabbitMq:Password"] = endpoints.RabbitPassword,
            ["Messaging:RabbitMq:UseTls"] = "true",
        };
        foreach (var (key, value) in tls) settings[key] = value;
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddLogging(logging => logging.AddProvider(log));
        services.AddSingleton(received ?? new TaskCompletionSource<Guid>());
        // A temporary (auto-deleted) queue and exchange of its own, not bound to the message type's exchange (which would be
        // durable): nothing is left on the shared broker.
        services.AddClassifierBus(configuration, bus => bus.AddConsumer<TlsProbeConsumer>()
            .Endpoint(e =>
            {
                e.Name = probeEndpoint ?? $"tls-probe-{TestServices.NewSuffix()}";
                e.Temporary = true;
                e.ConfigureConsumeTopology = false;
            }));
        return services.BuildServiceProvider();
    }

    public sealed record TlsProbe(Guid Id);

    public sealed class TlsProbeConsumer(TaskCompletionSource<Guid> received) : IConsumer<TlsProbe>
    {
        public Task Consume(ConsumeContext<TlsProbe> context)
        {
            received.TrySetResult(context.Message.Id);
            return Task.CompletedTask;
        }
    }

    private sealed class LogLines : ILoggerProvider, ILogger
    {
        private readonly ConcurrentQueue<string> _lines = new();

        public IReadOnlyList<string> Lines => [.. _lines];

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            _lines.Enqueue(formatter(state, exception));

        public void Dispose()
        {
        }
    }
}
