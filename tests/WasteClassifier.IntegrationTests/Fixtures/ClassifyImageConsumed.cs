using System.Collections.Concurrent;
using MassTransit;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>
/// Which rows' <see cref="ClassifyImage"/> a bus's consumer has returned from (or failed on) since it was connected: the sign
/// that a worker had its chance at a message, where a fixed wait can pass on a loaded machine before it was taken at all.
/// </summary>
public sealed class ClassifyImageConsumed : IConsumeMessageObserver<ClassifyImage>
{
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource> _consumed = new();

    /// <summary>Completes once a message for the row was consumed; faults with the consumer's exception if it failed.</summary>
    public Task For(Guid classificationId) => Consumed(classificationId).Task;

    private TaskCompletionSource Consumed(Guid classificationId) =>
        _consumed.GetOrAdd(classificationId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public Task PreConsume(ConsumeContext<ClassifyImage> context) => Task.CompletedTask;

    public Task PostConsume(ConsumeContext<ClassifyImage> context)
    {
        Consumed(context.Message.ClassificationId).TrySetResult();
        return Task.CompletedTask;
    }

    public Task ConsumeFault(ConsumeContext<ClassifyImage> context, Exception exception)
    {
        Consumed(context.Message.ClassificationId).TrySetException(exception);
        return Task.CompletedTask;
    }
}
