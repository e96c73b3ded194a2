using MassTransit;
using WasteClassifier.Infrastructure.Messaging;

namespace WasteClassifier.Components.Classifying;

/// <summary>Owns the classify queue's prefetch and concurrency settings.</summary>
public sealed class ClassifyImageBatchConsumerDefinition : ConsumerDefinition<ClassifyImageBatchConsumer>
{
    private readonly WorkerOptions _options;

    public ClassifyImageBatchConsumerDefinition(WorkerOptions options, MessagingOptions messaging)
    {
        _options = options;
        EndpointName = messaging.ClassifyQueue;
        ConcurrentMessageLimit = MessagesInFlight(options);
    }

    /// <summary>
    /// One full batch per pipeline slot plus one waiting: a batch slot that frees up finds a full batch already here,
    /// while no more is taken from the queue than this worker can start soon (other workers get the rest).
    /// </summary>
    public static int MessagesInFlight(WorkerOptions options) => Math.Max(1, options.BatchSize) * (Math.Max(1, options.PipelineDepth) + 1);

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<ClassifyImageBatchConsumer> consumerConfigurator, IRegistrationContext context)
    {
        endpointConfigurator.PrefetchCount = MessagesInFlight(_options);
        endpointConfigurator.UseMessageRetry(retry => retry.Intervals(Reliability.RetryPolicies.ClassifyIntervalsMs));
    }
}
