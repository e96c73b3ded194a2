using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.Components.Classifying;

/// <summary>
/// Forms batches from the messages waiting when a batch slot frees up, and runs up to
/// <see cref="WorkerOptions.PipelineDepth"/> batches at once (no more in the model at once than it has lanes, see
/// <see cref="ModelLanes"/>), so a batch is claimed, fetched and decoded while the others are in the model.
/// </summary>
/// <remarks>
/// MassTransit's own Batch&lt;T&gt; closed a batch on its timer even while the previous one was still running; under
/// load the prefetch window split into many small batches (1–6 messages) that stayed split, because every finished
/// batch freed exactly its own number of slots. Here a batch is taken from the queue only when it can start, so
/// whatever arrived meanwhile joins it. Each message's consume call completes when its batch has committed.
/// </remarks>
public sealed class ClassificationBatchScheduler
{
    private readonly Func<IReadOnlyList<ClassifyImage>, CancellationToken, Task> process;
    private readonly WorkerOptions options;
    private readonly ModelLanes lanes;
    private readonly ILogger<ClassificationBatchScheduler> logger;
    private readonly Lock _gate = new();
    private readonly Queue<Pending> _waiting = new();
    private int _running;

    public ClassificationBatchScheduler(IServiceScopeFactory scopes, WorkerOptions options, ModelLanes lanes, ILogger<ClassificationBatchScheduler> logger)
        : this(async (messages, cancellationToken) =>
        {
            await using var scope = scopes.CreateAsyncScope();
            var notifier = scope.ServiceProvider.GetRequiredService<ClassificationsFinishedNotifier>();
            BatchOutcome outcome;
            try
            {
                outcome = await scope.ServiceProvider.GetRequiredService<ClassificationBatchProcessor>().ProcessAsync(messages, cancellationToken);
            }
            catch (WorkerFaultException fault) when (fault.Finished.Count > 0)
            {
                // Rows saved before the fault (a pass before a suspect's, rows failed by the claim) are final: announced as
                // on success. Not cancelled with the batch (the announcement has its own timeout): thrown, a cancellation
                // would replace the fault, whose messages must go back to the queue.
                await notifier.NotifyAsync(fault.Finished, CancellationToken.None);
                throw;
            }
            // A superseded row's result is announced by the claim that wrote it.
            await notifier.NotifyAsync(messages.Select(m => m.ClassificationId).Distinct().Except(outcome.Superseded).ToList(), cancellationToken);
        }, options, lanes, logger)
    {
    }

    /// <summary>With the batch's work given directly (tests).</summary>
    internal ClassificationBatchScheduler(Func<IReadOnlyList<ClassifyImage>, CancellationToken, Task> process, WorkerOptions options, ModelLanes lanes,
        ILogger<ClassificationBatchScheduler> logger)
    {
        this.process = process;
        this.options = options;
        this.lanes = lanes;
        this.logger = logger;
    }

    /// <summary>Queues one message; completes when the batch holding it has been committed (or faults with it).</summary>
    public Task ClassifyAsync(ClassifyImage message, Guid? messageId, CancellationToken cancellationToken)
    {
        var pending = new Pending(message, messageId, cancellationToken);
        lock (_gate)
        {
            _waiting.Enqueue(pending);
            if (_running < Math.Max(1, options.PipelineDepth))
            {
                _running++;
                _ = Task.Run(RunAsync, CancellationToken.None);
            }
        }
        return pending.Completion.Task.WaitAsync(cancellationToken);
    }

    private async Task RunAsync()
    {
        while (true)
        {
            // While other batches hold every lane of the model, a partial batch would wait for a lane anyway: it may wait a
            // little for more messages at no cost in latency. With a lane free it starts at once.
            if (options.BatchWaitMs > 0) await WaitForMoreAsync(TimeSpan.FromMilliseconds(options.BatchWaitMs));
            var batch = Take();
            if (batch is null) return;
            await ProcessAsync(batch);
        }
    }

    private int Waiting()
    {
        lock (_gate) return _waiting.Count;
    }

    /// <summary>
    /// Until a lane frees up, a full batch waits, or the limit passes. Ending when a lane frees matters at low load: a batch
    /// that kept waiting (as it did until the limit) made every image of it up to 25 ms later for nothing, and the larger,
    /// slower batches that formed meanwhile kept both lanes busy (bench/run.sh, p95 at half saturation: 93 ms before,
    /// 35–42 after).
    /// </summary>
    private async Task WaitForMoreAsync(TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while (lanes.AllBusy && Waiting() < options.BatchSize && DateTime.UtcNow < deadline) await Task.Delay(2);
    }

    /// <summary>Up to BatchSize waiting messages whose consumers still wait; null (and this runner ends) when none.</summary>
    private List<Pending>? Take()
    {
        lock (_gate)
        {
            var batch = new List<Pending>(Math.Min(_waiting.Count, options.BatchSize));
            while (batch.Count < options.BatchSize && _waiting.TryDequeue(out var pending))
            {
                if (pending.CancellationToken.IsCancellationRequested) pending.Completion.TrySetCanceled(pending.CancellationToken);
                else batch.Add(pending);
            }
            if (batch.Count > 0) return batch;
            _running--;
            return null;
        }
    }

    private async Task ProcessAsync(List<Pending> batch)
    {
        // Scope properties reach every log line written while this batch runs (Serilog reads logger scopes).
        using var logScope = logger.BeginScope(new Dictionary<string, object?>
        {
            ["WorkerId"] = options.Id,
            ["MessageIds"] = batch.Select(p => p.MessageId?.ToString()).ToArray(),
            ["ClassificationIds"] = batch.Select(p => p.Message.ClassificationId.ToString()).ToArray(),
        });
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(batch.Select(p => p.CancellationToken).Distinct().ToArray());
        try
        {
            await process(batch.Select(p => p.Message).ToList(), cancellation.Token);
            foreach (var pending in batch) pending.Completion.TrySetResult();
        }
        catch (Exception e)
        {
            // Every message of the batch fails with it, so each is retried (and acknowledged) on its own.
            logger.LogWarning(e, "Batch of {BatchSize} failed", batch.Count);
            foreach (var pending in batch) pending.Completion.TrySetException(e);
        }
    }

    private sealed record Pending(ClassifyImage Message, Guid? MessageId, CancellationToken CancellationToken)
    {
        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
