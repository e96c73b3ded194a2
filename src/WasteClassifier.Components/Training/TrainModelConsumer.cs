using MassTransit;
using Microsoft.Extensions.Logging;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Messaging;

namespace WasteClassifier.Components.Training;

/// <summary>
/// Takes training jobs, one at a time per trainer (and, through the job table, across the cluster): claims the job and
/// hands it to <see cref="TrainingJobHost"/>, so the message is acknowledged now, not when the run ends.
/// </summary>
public sealed class TrainModelConsumer(TrainingJobRunner runner, TrainingJobHost host, ILogger<TrainModelConsumer> logger) : IConsumer<TrainModel>
{
    public async Task Consume(ConsumeContext<TrainModel> context)
    {
        var jobId = context.Message.TrainingJobId;
        if (host.RunningJob is { } running)
        {
            // Acknowledged: the job row records that it must run, and this trainer sends the next due job when its own ends.
            if (running == jobId) logger.LogInformation("Training job {TrainingJobId} runs on this trainer already; nothing to do", jobId);
            else logger.LogInformation("Training job {TrainingJobId} waits: this trainer runs {RunningJobId}, and sends the next job when it ends", jobId, running);
            return;
        }
        if (await runner.ClaimAsync(jobId, context.CancellationToken)) host.Start(jobId);
    }
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
