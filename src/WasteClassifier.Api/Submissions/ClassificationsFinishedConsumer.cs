using MassTransit;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.Api.Submissions;

/// <summary>Hands a worker's <see cref="ClassificationsFinished"/> to this process's <see cref="ClassificationResultWaiter"/>.</summary>
public sealed class ClassificationsFinishedConsumer(ClassificationResultWaiter waiter) : IConsumer<ClassificationsFinished>
{
    public Task Consume(ConsumeContext<ClassificationsFinished> context)
    {
        waiter.Finished(context.Message.ClassificationIds);
        return Task.CompletedTask;
    }
}

public sealed class ClassificationsFinishedConsumerDefinition : ConsumerDefinition<ClassificationsFinishedConsumer>
{
    // Every API process waits for its own requests: one auto-deleted queue per process, so the event fans out to all.
    private static readonly string InstanceName = $"classifications-finished-{Guid.NewGuid().ToString("N")[..12]}";

    public ClassificationsFinishedConsumerDefinition()
    {
        Endpoint(endpoint =>
        {
            endpoint.Name = InstanceName;
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
