using System.Diagnostics;
using MassTransit;
using MassTransit.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Components.Classifying;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Reliability;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

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
        await using var provider = Services(new ServiceCollection(), scheduler, TimeSpan.FromMilliseconds(10));
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

    [Fact]
    public async Task Consume_WorkerFaultOfAMessageSentBackTheMostTimes_ItsRowFailsWithItsOwnErrorAndIsNotSentBack()
    {
        // No worker could classify these in about 5 minutes of send-backs (no model anywhere, a missing image on workers
        // with nothing to check their access with): they went round for ever and their rows stayed queued.
        using var database = new InMemoryDatabase();
        var missing = await AddRowAsync(database);
        var other = await AddRowAsync(database);
        var scheduler = Scheduler((_, _) => throw new WorkerFaultException("the object store had none of the images this batch asked it for")
        {
            RowErrors = new Dictionary<Guid, RowError> { [missing] = new(ClassificationBatchProcessor.MissingImage, "the image is no longer in the object store") },
        });
        await using var provider = new ServiceCollection()
            .AddScoped(_ => database.NewContext())
            .AddSingleton(new WorkerOptions { Id = "worker-1" })
            .AddSingleton(TimeProvider.System)
            .AddScoped<ClassificationsFinishedNotifier>()
            .AddScoped(sp => new ClassifyImageBatchConsumer(scheduler, sp, NullLogger<ClassifyImageBatchConsumer>.Instance, TimeSpan.FromMilliseconds(10)))
            // 5 s, not the default 10: several tests wait it out to assert that no fault came.
            .AddPatientTestHarness(bus => bus.AddConsumer<ClassifyImageBatchConsumer>(), TimeSpan.FromSeconds(5))
            .BuildServiceProvider(true);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();

        foreach (var id in new[] { missing, other })
            await harness.Bus.Publish(new ClassifyImage { ClassificationId = id, ObjectKey = "k", SubmittedAt = DateTimeOffset.UtcNow },
                send => send.Headers.Set(ClassifyImageBatchConsumer.SentBackHeader, ClassifyImageBatchConsumer.MaxSendBacks));

        var consumer = harness.GetConsumerHarness<ClassifyImageBatchConsumer>();
        Assert.True(await consumer.Consumed.Any<ClassifyImage>(c => c.Context.Message.ClassificationId == other));
        await harness.InactivityTask;
        Assert.Equal(2, consumer.Consumed.Select<ClassifyImage>().Count());
        Assert.DoesNotContain(consumer.Consumed.Select<ClassifyImage>(), c => c.Exception is not null);
        Assert.Empty(harness.Sent.Select<ClassifyImage>());
        Assert.False(await harness.Published.Any<Fault<ClassifyImage>>());
        Assert.Equal(2, harness.Published.Select<ClassificationsFinished>().Count());
        await using var db = database.NewContext();
        var rows = await db.Classifications.AsNoTracking().ToDictionaryAsync(c => c.Id);
        Assert.Equal(("failed", ClassificationBatchProcessor.MissingImage, 1, "worker-1"),
            (rows[missing].Status, rows[missing].ErrorCode, rows[missing].Attempts, rows[missing].WorkerId));
        Assert.Equal(("failed", ClassifyImageFaultConsumer.ProcessingFailed), (rows[other].Status, rows[other].ErrorCode));
        Assert.Contains("no worker could classify it (100 times sent back to the queue): the object store had none", rows[other].Error);
    }

    [Fact]
    public async Task Consume_WorkerFaultOfAMessageSentBackTheMostTimesWhoseRowAnotherWorkerProcesses_TheRowIsLeftToThatClaim()
    {
        // Giving up failed any row not final, a processing one too: its attempts + 1 superseded the healthy worker's result.
        using var database = new InMemoryDatabase();
        var id = await AddRowAsync(database);
        await database.Context.Classifications.Where(c => c.Id == id).ExecuteUpdateAsync(s => s
            .SetProperty(c => c.Status, ClassificationStatus.Processing).SetProperty(c => c.WorkerId, "worker-2")
            .SetProperty(c => c.Attempts, 1).SetProperty(c => c.StartedAt, DateTime.UtcNow));
        var scheduler = Scheduler((_, _) => throw new WorkerFaultException("this worker has no model to classify with: no such file"));
        await using var provider = ServicesWithDatabase(database, scheduler);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();

        await harness.Bus.Publish(new ClassifyImage { ClassificationId = id, ObjectKey = "k", SubmittedAt = DateTimeOffset.UtcNow },
            send => send.Headers.Set(ClassifyImageBatchConsumer.SentBackHeader, ClassifyImageBatchConsumer.MaxSendBacks));

        var consumer = harness.GetConsumerHarness<ClassifyImageBatchConsumer>();
        Assert.True(await consumer.Consumed.Any<ClassifyImage>());
        await harness.InactivityTask;
        Assert.Null(Assert.Single(consumer.Consumed.Select<ClassifyImage>()).Exception);
        Assert.Empty(harness.Sent.Select<ClassifyImage>());
        Assert.False(await harness.Published.Any<ClassificationsFinished>());
        await using var db = database.NewContext();
        var row = await db.Classifications.AsNoTracking().SingleAsync(c => c.Id == id);
        Assert.Equal(("processing", "worker-2", 1), (row.Status, row.WorkerId, row.Attempts));
    }

    [Fact]
    public async Task Consume_WorkerFault_TheMessageGoesBackCountingItsSendBacks()
    {
        var scheduler = Scheduler((_, _) => throw new WorkerFaultException("this worker has no model to classify with: no such file"));
        await using var provider = Services(new ServiceCollection(), scheduler, TimeSpan.FromMilliseconds(10));
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        var message = new ClassifyImage { ClassificationId = Guid.NewGuid(), ObjectKey = "k", SubmittedAt = DateTimeOffset.UtcNow };

        await harness.Bus.Publish(message, send => send.Headers.Set(ClassifyImageBatchConsumer.SentBackHeader, 7));

        Assert.True(await harness.Sent.Any<ClassifyImage>());
        var sentBack = harness.Sent.Select<ClassifyImage>().First();
        Assert.Equal(8, sentBack.Context.Headers.Get<int>(ClassifyImageBatchConsumer.SentBackHeader));
        // A message from before the header was set: its first send-back is taken as now.
        Assert.NotNull(sentBack.Context.Headers.Get<string>(ClassifyImageBatchConsumer.FirstSentBackHeader));
        await harness.Stop();
    }

    [Fact]
    public async Task Consume_WorkerFaultOfAMessageWhoseRowIsFinal_AcknowledgedAndNotSentBack()
    {
        // A worker without a model sent back copies of rows already final, up to the send-back limit each.
        var scheduler = Scheduler((messages, _) => throw new WorkerFaultException("this worker has no model to classify with: no such file")
        {
            Settled = messages.Select(m => m.ClassificationId).ToHashSet(),
        });
        await using var provider = Services(new ServiceCollection(), scheduler, TimeSpan.FromMilliseconds(10));
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();

        await harness.Bus.Publish(new ClassifyImage { ClassificationId = Guid.NewGuid(), ObjectKey = "k", SubmittedAt = DateTimeOffset.UtcNow });

        var consumer = harness.GetConsumerHarness<ClassifyImageBatchConsumer>();
        Assert.True(await consumer.Consumed.Any<ClassifyImage>());
        await harness.InactivityTask;
        Assert.Null(Assert.Single(consumer.Consumed.Select<ClassifyImage>()).Exception);
        Assert.Empty(harness.Sent.Select<ClassifyImage>());
        Assert.False(await harness.Published.Any<Fault<ClassifyImage>>());
    }

    [Theory]
    [InlineData(ClassifyImageBatchConsumer.MinSendBacks, 6, false, true)]
    [InlineData(ClassifyImageBatchConsumer.MinSendBacks, 4, false, false)]
    [InlineData(ClassifyImageBatchConsumer.MinSendBacks - 1, 60, false, false)]
    [InlineData(ClassifyImageBatchConsumer.MinSendBacks, 6, true, false)]
    [InlineData(ClassifyImageBatchConsumer.MaxSendBacks, 6, true, true)]
    public async Task Consume_WorkerFaultOfAMessageSentBackSinceLongAgo_GivenUpOnceSentBackEnoughTimes(int sentBack, int firstMinutesAgo, bool classifiedMeanwhile,
        bool givenUp)
    {
        // Behind a backlog a message comes round far less often than the pause: 100 send-backs could take hours, while the
        // re-publisher's copies and the queue grew. An image classified since the first send-back shows a worker that can
        // classify: a message that met only faulty ones on its rounds goes on to the limit.
        using var database = new InMemoryDatabase();
        var id = await AddRowAsync(database);
        if (classifiedMeanwhile)
        {
            var done = await AddRowAsync(database);
            await using var db = database.NewContext();
            await db.Classifications.Where(c => c.Id == done).ExecuteUpdateAsync(s => s
                .SetProperty(c => c.Status, ClassificationStatus.Completed)
                .SetProperty(c => c.CompletedAt, DateTime.UtcNow.AddMinutes(-1)));
        }
        var scheduler = Scheduler((_, _) => throw new WorkerFaultException("this worker has no model to classify with: no such file"));
        await using var provider = ServicesWithDatabase(database, scheduler);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        var first = DateTime.UtcNow.AddMinutes(-firstMinutesAgo).ToString("O", System.Globalization.CultureInfo.InvariantCulture);

        await harness.Bus.Publish(new ClassifyImage { ClassificationId = id, ObjectKey = "k", SubmittedAt = DateTimeOffset.UtcNow }, send =>
        {
            send.Headers.Set(ClassifyImageBatchConsumer.SentBackHeader, sentBack);
            send.Headers.Set(ClassifyImageBatchConsumer.FirstSentBackHeader, first);
        });

        if (givenUp)
        {
            var consumer = harness.GetConsumerHarness<ClassifyImageBatchConsumer>();
            Assert.True(await consumer.Consumed.Any<ClassifyImage>());
            await harness.InactivityTask;
            Assert.Empty(harness.Sent.Select<ClassifyImage>());
            await using var db = database.NewContext();
            Assert.Equal("failed", (await db.Classifications.AsNoTracking().SingleAsync(c => c.Id == id)).Status);
        }
        else
        {
            // Sent back (it goes round again here, to the limit), with its first send-back's time.
            Assert.True(await harness.Sent.Any<ClassifyImage>());
            var again = harness.Sent.Select<ClassifyImage>().First();
            Assert.Equal(sentBack + 1, again.Context.Headers.Get<int>(ClassifyImageBatchConsumer.SentBackHeader));
            Assert.Equal(first, again.Context.Headers.Get<string>(ClassifyImageBatchConsumer.FirstSentBackHeader));
            await harness.Stop();
        }
    }

    [Fact]
    public async Task Consume_WorkerStopsDuringThePauseBeforeASendBack_TheMessageIsSentBackAtOnceAndNotFaulted()
    {
        // A shutdown cancelled the pause, whose TaskCanceledException could go through retries to the error queue and a
        // Fault, which fails the row.
        var tried = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var scheduler = Scheduler((_, _) =>
        {
            tried.TrySetResult();
            throw new WorkerFaultException("this worker has no model to classify with: no such file");
        });
        await using var provider = Services(new ServiceCollection(), scheduler, TimeSpan.FromMinutes(5));
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        var message = new ClassifyImage { ClassificationId = Guid.NewGuid(), ObjectKey = "k", SubmittedAt = DateTimeOffset.UtcNow };
        await harness.Bus.Publish(message);
        await tried.Task.WaitAsync(TimeSpan.FromSeconds(20));
        await Task.Delay(100);

        // A stop that waits a second for the consumers, then cancels their tokens (as the host's ConsumerStopTimeout does).
        var stopping = Stopwatch.StartNew();
        try
        {
            await provider.GetRequiredService<IBusControl>().StopAsync(TimeSpan.FromSeconds(1));
        }
        catch (OperationCanceledException)
        {
        }
        var consumer = harness.GetConsumerHarness<ClassifyImageBatchConsumer>();
        while (!consumer.Consumed.Select<ClassifyImage>().Any() && stopping.Elapsed < TimeSpan.FromSeconds(20)) await Task.Delay(10);

        Assert.True(stopping.Elapsed < TimeSpan.FromSeconds(20), $"stopped after {stopping.Elapsed}");
        var consumed = Assert.Single(consumer.Consumed.Select<ClassifyImage>());
        Assert.Null(consumed.Exception);
        Assert.False(await harness.Published.Any<Fault<ClassifyImage>>());
        Assert.Equal(message.ClassificationId, Assert.Single(harness.Sent.Select<ClassifyImage>()).Context.Message.ClassificationId);
    }

    private static ServiceProvider ServicesWithDatabase(InMemoryDatabase database, ClassificationBatchScheduler scheduler) =>
        Services(new ServiceCollection()
            .AddScoped(_ => database.NewContext())
            .AddSingleton(new WorkerOptions { Id = "worker-1" })
            .AddScoped<ClassificationsFinishedNotifier>(), scheduler, TimeSpan.FromMilliseconds(10));

    /// <summary>The consumer, with <paramref name="sendBackDelay"/> as its pause, on MassTransit's test harness.</summary>
    private static ServiceProvider Services(IServiceCollection services, ClassificationBatchScheduler scheduler, TimeSpan sendBackDelay) =>
        services
            .AddSingleton(TimeProvider.System)
            .AddScoped(sp => new ClassifyImageBatchConsumer(scheduler, sp, NullLogger<ClassifyImageBatchConsumer>.Instance, sendBackDelay))
            // 5 s, not the default 10: several tests wait it out to assert that no fault came.
            .AddPatientTestHarness(bus => bus.AddConsumer<ClassifyImageBatchConsumer>(), TimeSpan.FromSeconds(5))
            .BuildServiceProvider(true);

    private static async Task<Guid> AddRowAsync(InMemoryDatabase database)
    {
        var image = new StoredImage { Id = Guid.NewGuid(), ObjectKey = $"objects/{Guid.NewGuid():N}", ContentHash = Guid.NewGuid().ToString("N"), Format = "png", SizeBytes = 1, CreatedAt = DateTime.UtcNow };
        var row = new Classification { Id = Guid.CreateVersion7(), Image = image, CreatedAt = DateTime.UtcNow, Status = ClassificationStatus.Queued };
        database.Context.Classifications.Add(row);
        await database.Context.SaveChangesAsync();
        return row.Id;
    }

    private static int Tried(List<Guid> batches)
    {
        lock (batches) return batches.Count;
    }

    private static ClassificationBatchScheduler Scheduler(Func<IReadOnlyList<ClassifyImage>, CancellationToken, Task> process) =>
        new(process, new WorkerOptions { BatchSize = 16, PipelineDepth = 1, BatchWaitMs = 0 }, new ModelLanes(new ModelOptions { InferenceLanes = 1 }),
            NullLogger<ClassificationBatchScheduler>.Instance);
}
