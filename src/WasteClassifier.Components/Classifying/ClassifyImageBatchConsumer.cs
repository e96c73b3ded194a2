using MassTransit;
using Microsoft.Extensions.Logging;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.Components.Classifying;

/// <summary>
/// Receives <see cref="ClassifyImage"/> and hands it to the <see cref="ClassificationBatchScheduler"/>, which batches it
/// with whatever else is waiting; the message is acknowledged when its batch's commit returns. A batch this worker cannot
/// classify at all (<see cref="WorkerFaultException"/>: no model, store access in doubt) is neither retried here nor
/// faulted, which would fail its rows: after a pause each message is sent back to the end of the queue, for any worker.
/// </summary>
public sealed class ClassifyImageBatchConsumer : IConsumer<ClassifyImage>
{
    /// <summary>
    /// How long a message waits here before it goes back: a worker without a model would otherwise take its own messages
    /// back at once, over and over (RabbitMQ needs a plugin for delayed messages). Healthy workers meanwhile take the rest.
    /// </summary>
    public static readonly TimeSpan SendBackDelay = TimeSpan.FromSeconds(3);

    private readonly ClassificationBatchScheduler _scheduler;
    private readonly ILogger<ClassifyImageBatchConsumer> _logger;
    private readonly TimeSpan _sendBackDelay;

    public ClassifyImageBatchConsumer(ClassificationBatchScheduler scheduler, ILogger<ClassifyImageBatchConsumer> logger)
        : this(scheduler, logger, SendBackDelay)
    {
    }

    /// <summary>With another pause before a message goes back (tests).</summary>
    internal ClassifyImageBatchConsumer(ClassificationBatchScheduler scheduler, ILogger<ClassifyImageBatchConsumer> logger, TimeSpan sendBackDelay)
    {
        _scheduler = scheduler;
        _logger = logger;
        _sendBackDelay = sendBackDelay;
    }

    public async Task Consume(ConsumeContext<ClassifyImage> context)
    {
        try
        {
            await _scheduler.ClassifyAsync(context.Message, context.MessageId, context.CancellationToken);
        }
        catch (WorkerFaultException)
        {
            // The batch's log line says why. Sent before this delivery is acknowledged: a stop in between leaves a duplicate,
            // which the claim skips, never a lost image. A shutdown during the pause leaves the delivery unacknowledged.
            await Task.Delay(_sendBackDelay, context.CancellationToken);
            var queue = await context.GetSendEndpoint(context.ReceiveContext.InputAddress);
            await queue.Send(context.Message, context.CancellationToken);
            _logger.LogDebug("Classification {ClassificationId} sent back to the queue for another worker", context.Message.ClassificationId);
        }
    }
}
