using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Components.Classifying;
using WasteClassifier.Components.Models;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.UnitTests.Components;

/// <summary>What the classify consumer does with a batch that fails: a worker-local fault sends the message back.</summary>
public sealed class ClassifyImageBatchConsumerTests
{
    [Fact]
    public async Task Consume_BatchIsAWorkerFault_MessageIsSentBackToTheQueueAndNotFaulted()
    {
        var batches = new List<Guid>();
        var scheduler = Scheduler((messages, _) =>
        {
            lock (batches)
            {
                batches.AddRange(messages.Select(m => m.ClassificationId));
                // The first try is on a worker without a model; the message's next delivery finds one that has it.
                if (batches.Count == 1) throw new WorkerFaultException("this worker has no model to classify with: no such file");
            }
            return Task.CompletedTask;
        });
        await using var provider = new ServiceCollection()
            .AddScoped(_ => new ClassifyImageBatchConsumer(scheduler, NullLogger<ClassifyImageBatchConsumer>.Instance, TimeSpan.FromMilliseconds(10)))
            .AddMassTransitTestHarness(bus => bus.AddConsumer<ClassifyImageBatchConsumer>())
            .BuildServiceProvider(true);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        var message = new ClassifyImage { ClassificationId = Guid.NewGuid(), ObjectKey = "k", SubmittedAt = DateTimeOffset.UtcNow };

        await harness.Bus.Publish(message);

        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (Tried(batches) < 2 && DateTime.UtcNow < deadline) await Task.Delay(10);
        await harness.InactivityTask;
        var consumer = harness.GetConsumerHarness<ClassifyImageBatchConsumer>();
        Assert.Equal([message.ClassificationId, message.ClassificationId], batches);
        Assert.Equal(2, consumer.Consumed.Select<ClassifyImage>().Count());
        Assert.DoesNotContain(consumer.Consumed.Select<ClassifyImage>(), c => c.Exception is not null);
        Assert.False(await harness.Published.Any<Fault<ClassifyImage>>());
        var sentBack = Assert.Single(harness.Sent.Select<ClassifyImage>());
        Assert.Equal(message.ClassificationId, sentBack.Context.Message.ClassificationId);
    }

    private static int Tried(List<Guid> batches)
    {
        lock (batches) return batches.Count;
    }

    private static ClassificationBatchScheduler Scheduler(Func<IReadOnlyList<ClassifyImage>, CancellationToken, Task> process) =>
        new(process, new WorkerOptions { BatchSize = 16, PipelineDepth = 1, BatchWaitMs = 0 }, new ModelLanes(new ModelOptions { InferenceLanes = 1 }),
            NullLogger<ClassificationBatchScheduler>.Instance);
}
