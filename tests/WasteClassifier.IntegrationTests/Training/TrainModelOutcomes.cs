using System.Collections.Concurrent;
using MassTransit;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.IntegrationTests.Training;

/// <summary>
/// How the trainers' consumers observed answered each job's first <see cref="TrainModel"/>: null when it returned (the
/// message is acknowledged), else its exception; and the queues every such message was received from.
/// </summary>
internal sealed class TrainModelOutcomes : IConsumeObserver
{
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource<Exception?>> _outcomes = new();
    private readonly ConcurrentBag<Uri> _inputs = [];

    public Task<Exception?> For(Guid jobId) => Outcome(jobId).Task;

    /// <summary>The receive endpoints the observed messages came in on.</summary>
    public IReadOnlyCollection<Uri> Inputs => _inputs;

    private TaskCompletionSource<Exception?> Outcome(Guid jobId) =>
        _outcomes.GetOrAdd(jobId, _ => new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously));

    public Task PreConsume<T>(ConsumeContext<T> context) where T : class => Task.CompletedTask;

    public Task PostConsume<T>(ConsumeContext<T> context) where T : class
    {
        if (context.Message is TrainModel message) Answered(context, message, null);
        return Task.CompletedTask;
    }

    public Task ConsumeFault<T>(ConsumeContext<T> context, Exception exception) where T : class
    {
        if (context.Message is TrainModel message) Answered(context, message, exception);
        return Task.CompletedTask;
    }

    private void Answered(ConsumeContext context, TrainModel message, Exception? exception)
    {
        if (context.ReceiveContext.InputAddress is { } input) _inputs.Add(input);
        Outcome(message.TrainingJobId).TrySetResult(exception);
    }
}
