using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Components.Classifying;
using WasteClassifier.Components.Models;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.UnitTests.Components;

/// <summary>How messages become batches: whatever waits when a batch slot frees up joins the next batch.</summary>
public sealed class ClassificationBatchSchedulerTests
{
    [Fact]
    public async Task Classify_MessagesArrivingWhileABatchRuns_JoinTheNextBatchesUpToTheSize()
    {
        var release = new TaskCompletionSource();
        var sizes = new List<int>();
        var scheduler = Scheduler(new WorkerOptions { BatchSize = 16, PipelineDepth = 1, BatchWaitMs = 0 }, async (messages, _) =>
        {
            lock (sizes) sizes.Add(messages.Count);
            await release.Task;
        });

        var first = scheduler.ClassifyAsync(Message(), null, CancellationToken.None);
        await WaitUntilAsync(() => sizes.Count == 1);
        var rest = Enumerable.Range(0, 20).Select(_ => scheduler.ClassifyAsync(Message(), null, CancellationToken.None)).ToList();
        release.SetResult();
        await Task.WhenAll(rest.Append(first)).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal([1, 16, 4], sizes);
    }

    [Fact]
    public async Task Classify_PipelineDepthTwo_RunsAtMostTwoBatchesAtOnce()
    {
        var running = 0;
        var most = 0;
        // Batches are held until released, not for a fixed time: on a loaded machine one batch of 20 ms ended before the
        // second runner's thread started, and no two ever overlapped.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var scheduler = Scheduler(new WorkerOptions { BatchSize = 2, PipelineDepth = 2, BatchWaitMs = 0 }, async (_, _) =>
        {
            var now = Interlocked.Increment(ref running);
            InterlockedMax(ref most, now);
            await release.Task;
            Interlocked.Decrement(ref running);
        });

        var all = Enumerable.Range(0, 12).Select(_ => scheduler.ClassifyAsync(Message(), null, CancellationToken.None)).ToList();
        await WaitUntilAsync(() => Volatile.Read(ref running) >= 2);
        await Task.Delay(100); // room for a third batch to start, were the depth not kept
        Assert.Equal(2, Volatile.Read(ref running));
        release.SetResult();
        await Task.WhenAll(all).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, most);
    }

    [Theory]
    [InlineData(2, false)]
    [InlineData(1, true)]
    public async Task Classify_MessageArrivingWhileABatchRuns_StartsAtOnceOnlyWhenALaneIsFree(int modelLanes, bool waitsForMore)
    {
        var release = new TaskCompletionSource();
        var started = 0;
        var holding = 0;
        using var lanes = Lanes(modelLanes);
        // A wait far longer than any stall of the machine: only a lane freeing up ends it.
        var scheduler = Scheduler(new WorkerOptions { BatchSize = 16, PipelineDepth = 3, BatchWaitMs = 600_000 }, async (_, _) =>
        {
            Interlocked.Increment(ref started);
            await HoldALaneAsync(lanes, release.Task, () => Interlocked.Increment(ref holding));
        }, lanes);

        var first = scheduler.ClassifyAsync(Message(), null, CancellationToken.None);
        // Once the first batch holds its lane, not only started: sent before, the second found every lane free.
        await WaitUntilAsync(() => Volatile.Read(ref holding) == 1);
        var second = scheduler.ClassifyAsync(Message(), null, CancellationToken.None);
        // Polled by the clock, so a busy machine's slow thread start does not fail it: up to 60 s for the second batch to
        // start where it should, 2 s of watching it not start where it must wait.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var observe = TimeSpan.FromSeconds(waitsForMore ? 2 : 60);
        while (watch.Elapsed < observe && Volatile.Read(ref started) < 2) await Task.Delay(15);

        // One lane busy of two: the lone message takes the free lane. The only lane busy: it waits for company.
        Assert.Equal(waitsForMore ? 1 : 2, Volatile.Read(ref started));
        release.SetResult();
        await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task Classify_BatchWaitingForCompany_StartsWhenTheLaneFreesUpNotAtTheEndOfTheWait()
    {
        var releaseFirst = new TaskCompletionSource();
        var sizes = new List<int>();
        using var lanes = Lanes(1);
        var scheduler = Scheduler(new WorkerOptions { BatchSize = 16, PipelineDepth = 2, BatchWaitMs = 60_000 }, async (messages, _) =>
        {
            int call;
            lock (sizes)
            {
                sizes.Add(messages.Count);
                call = sizes.Count;
            }
            await HoldALaneAsync(lanes, call == 1 ? releaseFirst.Task : Task.CompletedTask);
        }, lanes);

        var first = scheduler.ClassifyAsync(Message(), null, CancellationToken.None);
        await WaitUntilAsync(() => lanes.AllBusy);
        var waiting = Enumerable.Range(0, 3).Select(_ => scheduler.ClassifyAsync(Message(), null, CancellationToken.None)).ToList();
        await Task.Delay(50);
        releaseFirst.SetResult();

        // Far sooner than the 60 s wait: the three that gathered while the lane was busy go together once it is free.
        await Task.WhenAll(waiting.Append(first)).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal([1, 3], sizes);
    }

    [Fact]
    public async Task Classify_BatchThrows_EveryMessageOfItFaultsAndLaterOnesStillRun()
    {
        var calls = 0;
        var release = new TaskCompletionSource();
        var scheduler = Scheduler(new WorkerOptions { BatchSize = 4, PipelineDepth = 1, BatchWaitMs = 0 }, async (_, _) =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                await release.Task;
                throw new InvalidOperationException("database down");
            }
        });

        var failing = new[] { scheduler.ClassifyAsync(Message(), null, CancellationToken.None) };
        await WaitUntilAsync(() => Volatile.Read(ref calls) == 1);
        var later = Enumerable.Range(0, 3).Select(_ => scheduler.ClassifyAsync(Message(), null, CancellationToken.None)).ToList();
        release.SetResult();

        await Assert.ThrowsAsync<InvalidOperationException>(() => failing[0]);
        await Task.WhenAll(later).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(2, calls);
    }

    private static ClassificationBatchScheduler Scheduler(WorkerOptions options, Func<IReadOnlyList<ClassifyImage>, CancellationToken, Task> process,
        ModelLanes? lanes = null) =>
        new(process, options, lanes ?? Lanes(1), NullLogger<ClassificationBatchScheduler>.Instance);

    private static ModelLanes Lanes(int count) => new(new ModelOptions { InferenceLanes = count });

    /// <summary>What the batch processor does around inference: holds one of the model's lanes while it runs.</summary>
    private static async Task HoldALaneAsync(ModelLanes lanes, Task inference, Action? held = null)
    {
        await lanes.WaitAsync(CancellationToken.None);
        try
        {
            held?.Invoke();
            await inference;
        }
        finally
        {
            lanes.Release();
        }
    }

    private static ClassifyImage Message() => new() { ClassificationId = Guid.NewGuid(), ObjectKey = "k", SubmittedAt = DateTimeOffset.UtcNow };

    /// <summary>Polls by the clock, with room for a loaded machine that is slow to start a batch's thread.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (!condition() && deadline.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(10);
        Assert.True(condition());
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
