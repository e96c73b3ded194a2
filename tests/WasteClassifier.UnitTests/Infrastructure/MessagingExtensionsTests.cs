using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using WasteClassifier.Infrastructure.Messaging;

namespace WasteClassifier.UnitTests.Infrastructure;

public class MessagingExtensionsTests
{
    [Theory]
    [InlineData("inmemory")]
    [InlineData("rabbitmq")]
    public async Task ClassifierBus_NeverReportsUsageTelemetry(string transport)
    {
        // MassTransit's default posts usage telemetry to its vendor a few minutes after start: no service may call out.
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Messaging:Transport"] = transport })
            .Build();
        await using var provider = new ServiceCollection()
            .AddClassifierBus(configuration, _ => { })
            .BuildServiceProvider();

        Assert.False(provider.GetRequiredService<IOptions<UsageTelemetryOptions>>().Value.Enabled);
    }
}
