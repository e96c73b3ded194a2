using MassTransit;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.Api.Submissions;

/// <summary>Hands a worker's <see cref="ClassificationsFinished"/> to this process's <see cref="ClassificationResultWaiter"/>.</summary>
public sealed class ClassificationsFinishedConsumer(ClassificationResultWaiter waiter) : IConsumer<ClassificationsFinished>
{
    public async Task Consume(ConsumeContext<ClassificationsFinished> context)
    {
        // A malformed event answers nobody; the waiter's database check still does.
        if (context.Message.ClassificationIds is { } ids) await waiter.FinishedAsync(ids, context.CancellationToken);
    }
}

public sealed class ClassificationsFinishedConsumerDefinition : ConsumerDefinition<ClassificationsFinishedConsumer>
{
    public ClassificationsFinishedConsumerDefinition()
    {
        // Every API waits for its own requests: one auto-deleted queue per API (per bus, not per process: the tests host
        // several APIs in one process, and a shared queue would split the events between them), so the event fans out to all.
        var name = $"classifications-finished-{Guid.NewGuid().ToString("N")[..12]}";
        Endpoint(endpoint =>
        {
            endpoint.Name = name;
            endpoint.Temporary = true;
        });
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<ClassificationsFinishedConsumer> consumerConfigurator,
        IRegistrationContext context)
    {
        // A hint that is stale in seconds: never retried, never moved to an error queue.
        endpointConfigurator.DiscardFaultedMessages();
    }
}
