using MassTransit;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.Components.Training;

/// <summary>Runs training jobs, one at a time per trainer (and, through the job table, across the cluster).</summary>
public sealed class TrainModelConsumer(TrainingJobRunner runner) : IConsumer<TrainModel>
{
    public Task Consume(ConsumeContext<TrainModel> context) => runner.RunAsync(context.Message.TrainingJobId, context.CancellationToken);
}

public sealed class TrainModelConsumerDefinition : ConsumerDefinition<TrainModelConsumer>
{
    public TrainModelConsumerDefinition()
    {
        EndpointName = QueueNames.TrainModel;
        ConcurrentMessageLimit = 1;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<TrainModelConsumer> consumerConfigurator, IRegistrationContext context)
    {
        endpointConfigurator.PrefetchCount = 1;
        // While another trainer runs a job, wait and try again rather than fail the job.
        endpointConfigurator.UseMessageRetry(retry =>
        {
            retry.Handle<TrainerBusyException>();
            retry.Interval(360, TimeSpan.FromSeconds(10));
        });
    }
}
