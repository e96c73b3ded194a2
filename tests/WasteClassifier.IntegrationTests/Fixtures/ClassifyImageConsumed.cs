using System.Collections.Concurrent;
using MassTransit;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>
/// Which rows' <see cref="ClassifyImage"/> a bus's consumer has returned from or failed on since it was connected: the sign
/// that a worker had its chance at a message, where a fixed wait can pass on a loaded machine before it was taken at all.
/// Only deliveries it saw begin count: one already being consumed when it was connected (a row's first delivery, whose
/// result was saved before its consumer returned) would otherwise stand for the next.
/// </summary>
public sealed class ClassifyImageConsumed : IConsumeMessageObserver<ClassifyImage>
{
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource> _consumed = new();
    // Deliveries begun and not ended, by message id and row: a context's instance may differ between the calls.
    private readonly ConcurrentDictionary<(Guid? MessageId, Guid ClassificationId), int> _begun = new();

    /// <summary>
    /// Completes once a delivery for the row that began after this was connected has ended, returned or failed: a failed
    /// try is a chance taken too (a retry may still follow; what the test then asserts decides).
    /// </summary>
    public Task For(Guid classificationId) => Consumed(classificationId).Task;

    private TaskCompletionSource Consumed(Guid classificationId) =>
        _consumed.GetOrAdd(classificationId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public Task PreConsume(ConsumeContext<ClassifyImage> context)
    {
        _begun.AddOrUpdate((context.MessageId, context.Message.ClassificationId), 1, (_, n) => n + 1);
        return Task.CompletedTask;
    }

    public Task PostConsume(ConsumeContext<ClassifyImage> context) => Ended(context);

    public Task ConsumeFault(ConsumeContext<ClassifyImage> context, Exception exception) => Ended(context);

    private Task Ended(ConsumeContext<ClassifyImage> context)
    {
        var key = (context.MessageId, context.Message.ClassificationId);
        while (_begun.TryGetValue(key, out var begun) && begun > 0)
        {
            if (!_begun.TryUpdate(key, begun - 1, begun)) continue;
            Consumed(key.ClassificationId).TrySetResult();
            break;
        }
        return Task.CompletedTask;
    }
}
