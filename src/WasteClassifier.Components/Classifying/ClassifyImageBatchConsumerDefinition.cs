using MassTransit;
using WasteClassifier.Infrastructure.Messaging;

namespace WasteClassifier.Components.Classifying;

/// <summary>Owns the classify queue's batch and concurrency settings.</summary>
public sealed class ClassifyImageBatchConsumerDefinition : ConsumerDefinition<ClassifyImageBatchConsumer>
{
    private readonly WorkerOptions _options;

    public ClassifyImageBatchConsumerDefinition(WorkerOptions options, MessagingOptions messaging)
    {
        _options = options;
        EndpointName = messaging.ClassifyQueue;
        // Room for the batch being classified and the next one filling up behind it.
        ConcurrentMessageLimit = options.BatchSize * 2;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<ClassifyImageBatchConsumer> consumerConfigurator, IRegistrationContext context)
    {
        endpointConfigurator.PrefetchCount = _options.BatchSize * 2;
        endpointConfigurator.UseMessageRetry(retry => retry.Intervals(200, 1000, 5000));
        consumerConfigurator.Options<BatchOptions>(batch => batch
            .SetMessageLimit(_options.BatchSize)
            .SetTimeLimit(TimeSpan.FromMilliseconds(_options.BatchWaitMs))
            .SetConcurrencyLimit(1));
    }
}
