using MassTransit;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Messaging;

namespace WasteClassifier.Components.Training;

/// <summary>Runs training jobs, one at a time per trainer (and, through the job table, across the cluster).</summary>
public sealed class TrainModelConsumer(TrainingJobRunner runner) : IConsumer<TrainModel>
{
    public Task Consume(ConsumeContext<TrainModel> context) => runner.RunAsync(context.Message.TrainingJobId, context.CancellationToken);
}

public sealed class TrainModelConsumerDefinition : ConsumerDefinition<TrainModelConsumer>
{
    public TrainModelConsumerDefinition(MessagingOptions messaging)
    {
        EndpointName = messaging.TrainQueue;
        ConcurrentMessageLimit = 1;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<TrainModelConsumer> consumerConfigurator, IRegistrationContext context)
    {
        // No retry while another trainer runs a job: the runner acknowledges such a message (the job stays queued, and the
        // trainer whose job ends sends it). Held in a retry instead, it outlived RabbitMQ's consumer_timeout (30 min), and
        // the broker closed the channel.
        endpointConfigurator.PrefetchCount = 1;
    }
}
