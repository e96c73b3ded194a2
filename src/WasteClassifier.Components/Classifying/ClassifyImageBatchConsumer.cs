using MassTransit;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.Components.Classifying;

/// <summary>
/// Receives <see cref="ClassifyImage"/> and hands it to the <see cref="ClassificationBatchScheduler"/>, which batches it
/// with whatever else is waiting; the message is acknowledged when its batch's commit returns.
/// </summary>
public sealed class ClassifyImageBatchConsumer(ClassificationBatchScheduler scheduler) : IConsumer<ClassifyImage>
{
    public Task Consume(ConsumeContext<ClassifyImage> context) =>
        scheduler.ClassifyAsync(context.Message, context.MessageId, context.CancellationToken);
}
