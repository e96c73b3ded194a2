using System.Data.Common;
using System.Net;
using System.Security.Cryptography;
using MassTransit;
using MassTransit.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Components.Classifying;
using WasteClassifier.Components.Models;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Components;

/// <summary>The batch logic with fakes for the store and the model, on an in-memory SQLite database.</summary>
public sealed class ClassificationBatchProcessorTests : IDisposable
{
    private static readonly string[] Labels = ["low", "middle", "high"];
    private const int MaxAttempts = 3;
    private readonly InMemoryDatabase _database = new();
    private readonly MemoryObjectStore _store = new();
    private readonly RedChannelClassifier _classifier = new();
    // One per worker process: shared by every batch the test runs.
    private readonly AccessProbeKeys _probes = new();


    [Fact]
    public async Task Process_MixedBatch_GoodImagesClassifiedInOneCallAndBadOnesFailedWithReasons()
    {
        var messages = new[]
        {
            await AddAsync(TestImages.SolidPng(20, 10, new Rgb24(250, 0, 0))),
            await AddAsync("garbage"u8.ToArray()),
            await AddAsync(TestImages.SolidPng(16, 16, new Rgb24(10, 0, 0))),
            await AddAsync(content: null),
            await AddAsync(TestImages.SolidPng(8, 30, new Rgb24(120, 0, 0))),
        };

        var outcome = await Processor().ProcessAsync(messages, CancellationToken.None);

        Assert.Equal(new BatchOutcome(5, 3, 2), outcome);
        Assert.Equal([3], _classifier.BatchSizes);
        var rows = await Rows(messages);
        Assert.Equal(["high", null, "low", null, "middle"], rows.Select(r => r.PredictedClass));
        Assert.Equal(["completed", "failed", "completed", "failed", "completed"], rows.Select(r => r.Status));
        Assert.Equal([null, "not_an_image", null, "image_missing", null], rows.Select(r => r.ErrorCode));
        Assert.All(rows, r => Assert.Equal("worker-1", r.WorkerId));
        Assert.All(rows.Where(r => r.Status == "completed"), r =>
        {
            Assert.Equal("fake-1", r.ModelVersion);
            Assert.Equal(5, r.BatchSize);
            Assert.Equal(0.8, r.Confidence!.Value, 5);
            Assert.Equal(3, ClassificationResultJson.Deserialize(r.AllPredictions).Count);
            Assert.True(r.TotalMs >= r.QueueMs);
        });
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public async Task Process_ModelScoreNotFinite_OnlyThatRowFailsAndTheRestIsSaved(float score)
    {
        var bad = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        var good = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        _classifier.OnOutput = output => output[0][1] = score;

        var outcome = await Processor().ProcessAsync([bad, good], CancellationToken.None);

        Assert.Equal(new BatchOutcome(2, 1, 1), outcome);
        var rows = await Rows([bad, good]);
        Assert.Equal(("failed", ClassificationBatchProcessor.ModelOutputInvalid, null), (rows[0].Status, rows[0].ErrorCode, rows[0].AllPredictions));
        Assert.Contains("fake-1", rows[0].Error);
        Assert.Equal(("completed", "low"), (rows[1].Status, rows[1].PredictedClass));
    }

    [Fact]
    public async Task Process_RedeliveredFinishedRow_DoesNoWork()
    {
        var message = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        await Processor().ProcessAsync([message], CancellationToken.None);

        var outcome = await Processor().ProcessAsync([message, message], CancellationToken.None);

        Assert.Equal(new BatchOutcome(0, 0, 0), outcome);
        Assert.Single(_classifier.BatchSizes);
        Assert.Equal(1, (await Rows([message])).Single().Attempts);
    }

    [Fact]
    public async Task Process_RowClaimedAgainAndFinishedWhileTheBatchRuns_ItsResultIsDroppedAndTheRestSaved()
    {
        var taken = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        var kept = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        // A duplicate delivery claims the row while this batch fetches its image, and saves its result first.
        _store.BeforeRead = async key =>
        {
            if (key != taken.ObjectKey) return;
            await using var other = _database.NewContext();
            var row = (await other.ClaimAsync([taken.ClassificationId], "worker-2", DateTime.UtcNow, MaxAttempts, CancellationToken.None)).Claimed.Single();
            (row.Status, row.PredictedClass, row.CompletedAt) = (ClassificationStatus.Completed, "middle", DateTime.UtcNow);
            await other.SaveChangesAsync();
        };

        var outcome = await Processor().ProcessAsync([taken, kept], CancellationToken.None);

        Assert.Equal(new BatchOutcome(1, 1, 0) { Superseded = [taken.ClassificationId] }, outcome);
        var rows = await Rows([taken, kept]);
        Assert.Equal(("completed", "middle", "worker-2", 2), (rows[0].Status, rows[0].PredictedClass, rows[0].WorkerId, rows[0].Attempts));
        Assert.Equal(("completed", "low", "worker-1", 1), (rows[1].Status, rows[1].PredictedClass, rows[1].WorkerId, rows[1].Attempts));
    }

    [Fact]
    public async Task Process_RowClaimedMaxAttemptsTimes_FailedWithoutReadingItsImageAndTheRestClassified()
    {
        var exhausted = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)), attempts: MaxAttempts);
        var good = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)), attempts: MaxAttempts - 1);

        var outcome = await Processor().ProcessAsync([exhausted, good], CancellationToken.None);

        Assert.Equal(new BatchOutcome(2, 1, 1), outcome);
        Assert.Equal(1, _store.Reads);
        Assert.Equal([1], _classifier.BatchSizes);
        var rows = await Rows([exhausted, good]);
        Assert.Equal(("failed", ClassificationClaims.TooManyAttempts, MaxAttempts + 1, "worker-1"), (rows[0].Status, rows[0].ErrorCode, rows[0].Attempts, rows[0].WorkerId));
        Assert.NotNull(rows[0].TotalMs);
        Assert.Equal(("completed", "low", MaxAttempts), (rows[1].Status, rows[1].PredictedClass, rows[1].Attempts));
    }

    [Fact]
    public async Task Process_EveryRowClaimedMaxAttemptsTimes_FailedWithoutTheModel()
    {
        var exhausted = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)), attempts: MaxAttempts);
        // The model is never reached: its failure would fail the batch.
        _classifier.Failure = new InvalidOperationException("this batch stops the worker");

        var outcome = await Processor().ProcessAsync([exhausted], CancellationToken.None);

        Assert.Equal(new BatchOutcome(1, 0, 1), outcome);
        Assert.Equal(0, _store.Reads);
        var row = (await Rows([exhausted])).Single();
        Assert.Equal(("failed", ClassificationClaims.TooManyAttempts), (row.Status, row.ErrorCode));
        Assert.Contains($"claimed {MaxAttempts} times", row.Error);
    }

    [Fact]
    public async Task Process_NoRowClaimedMoreThanTwice_OneModelCallGetsTheWholeBatch()
    {
        var messages = new[]
        {
            await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0))),
            // Claimed once before: a retry or a duplicate delivery, not a suspect.
            await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)), attempts: 1),
            await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(120, 0, 0))),
        };

        var outcome = await Processor().ProcessAsync(messages, CancellationToken.None);

        Assert.Equal(new BatchOutcome(3, 3, 0), outcome);
        Assert.Equal([3], _classifier.BatchSizes);
        Assert.All(await Rows(messages), r => Assert.Equal(("completed", 3), (r.Status, r.BatchSize)));
    }

    [Fact]
    public async Task Process_RowClaimedMoreThanTwice_ClassifiedAloneAfterTheRestOfTheBatchIsSaved()
    {
        var first = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        // Claimed twice before without a result: its batches probably stopped the worker.
        var suspect = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)), attempts: 2);
        var last = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(120, 0, 0)), attempts: 1);
        List<(string Status, int? BatchSize)>? whileTheSuspectRuns = null;
        _classifier.OnClassify = reds =>
        {
            if (reds is not [250]) return;
            using var other = _database.NewContext();
            var ids = new[] { first.ClassificationId, last.ClassificationId, suspect.ClassificationId };
            whileTheSuspectRuns = ids.Select(id => other.Classifications.AsNoTracking().Single(c => c.Id == id)).Select(r => (r.Status, r.BatchSize)).ToList();
        };

        var outcome = await Processor().ProcessAsync([first, suspect, last], CancellationToken.None);

        Assert.Equal(new BatchOutcome(3, 3, 0), outcome);
        Assert.Equal([[10, 120], [250]], _classifier.Reds);
        // Had the suspect stopped the worker, its neighbours were already final.
        Assert.Equal([("completed", 2), ("completed", 2), ("processing", null)], whileTheSuspectRuns);
        var rows = await Rows([first, suspect, last]);
        Assert.Equal([("low", 2), ("high", 1), ("middle", 2)], rows.Select(r => (r.PredictedClass, r.BatchSize)));
    }

    [Fact]
    public async Task Process_SuspectStopsItsBatchEachTime_OnlyItEndsTooManyAttempts()
    {
        const int maxAttempts = 10;
        var messages = new[]
        {
            await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)), attempts: 2),
            await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)), attempts: 2),
            await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(120, 0, 0)), attempts: 2),
        };
        // The middle image stops the worker (thrown here: either way its batch ends without a result and is redelivered).
        _classifier.OnClassify = reds =>
        {
            if (reds.Contains(250)) throw new InvalidOperationException("native crash in the model");
        };

        var deliveries = 0;
        while (true)
        {
            deliveries++;
            try
            {
                await Processor(maxAttempts).ProcessAsync(messages, CancellationToken.None);
                break;
            }
            catch (InvalidOperationException) when (deliveries < maxAttempts)
            {
            }
        }

        var rows = await Rows(messages);
        Assert.Equal([("completed", null), ("failed", ClassificationClaims.TooManyAttempts), ("completed", null)], rows.Select(r => (r.Status, r.ErrorCode)));
        // The first one before the crash, the last on the next delivery, which takes the suspects the other way round.
        Assert.Equal([3, 4], [rows[0].Attempts, rows[2].Attempts]);
    }

    [Fact]
    public async Task Process_MessageWithoutRow_IsDroppedAndTheRestCompletes()
    {
        var good = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        var orphan = new ClassifyImage { ClassificationId = Guid.NewGuid(), ObjectKey = "nowhere", SubmittedAt = DateTimeOffset.UtcNow };

        var outcome = await Processor().ProcessAsync([orphan, good], CancellationToken.None);

        Assert.Equal(new BatchOutcome(1, 1, 0), outcome);
    }

    [Fact]
    public async Task Process_ShortReadThenWholeObject_ReadsAgainAndCompletes()
    {
        var message = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        _store.ShortReadsLeft = 2;

        var outcome = await Processor().ProcessAsync([message], CancellationToken.None);

        Assert.Equal(new BatchOutcome(1, 1, 0), outcome);
        Assert.Equal(0, _store.ShortReadsLeft);
        Assert.Equal("high", (await Rows([message])).Single().PredictedClass);
    }

    [Fact]
    public async Task Process_ObjectNeverWhole_FailsWithSizeMismatchAndTheRestCompletes()
    {
        var good = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        var bad = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        _store.ShortKeys.Add(bad.ObjectKey);

        var outcome = await Processor().ProcessAsync([good, bad], CancellationToken.None);

        Assert.Equal(new BatchOutcome(2, 1, 1), outcome);
        var rows = await Rows([good, bad]);
        Assert.Equal(["completed", "failed"], rows.Select(r => r.Status));
        Assert.Equal(ClassificationBatchProcessor.SizeMismatch, rows[1].ErrorCode);
        Assert.Contains("returned 0 bytes", rows[1].Error);
    }

    [Fact]
    public async Task Process_StoreRefusesOneObjectForGood_ThatRowFailsUnreadableAndTheRestCompletes()
    {
        var good = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        var other = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(120, 0, 0)));
        _store.BeforeRead = key => key == refused.ObjectKey
            ? throw new ObjectStoreResponseException($"object store GET {key} answered 403 AccessDenied", HttpStatusCode.Forbidden, "AccessDenied")
            : Task.CompletedTask;

        var outcome = await Processor().ProcessAsync([good, refused, other], CancellationToken.None);

        Assert.Equal(new BatchOutcome(3, 2, 1), outcome);
        Assert.Equal([2], _classifier.BatchSizes);
        var rows = await Rows([good, refused, other]);
        Assert.Equal([("completed", "low"), ("failed", null), ("completed", "middle")], rows.Select(r => (r.Status, r.PredictedClass)));
        Assert.Equal(ClassificationBatchProcessor.UnreadableImage, rows[1].ErrorCode);
        Assert.Contains("answered 403 AccessDenied", rows[1].Error);
    }

    [Fact]
    public async Task Process_StoreAnswers403ToEveryObject_AWorkerFaultThatLeavesItsRowsQueued()
    {
        // Every read refused: the worker's credentials or the bucket's policy, not the images. Failing them all at once would
        // lose images another worker, or this one once its access is mended, could read.
        var first = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        var second = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        _store.BeforeRead = key =>
            throw new ObjectStoreResponseException($"object store GET {key} answered 403 AccessDenied", HttpStatusCode.Forbidden, "AccessDenied");

        await Assert.ThrowsAsync<WorkerFaultException>(() => Processor().ProcessAsync([first, second], CancellationToken.None));

        Assert.Empty(_classifier.BatchSizes);
        // As if never claimed: no worker or start time on a queued row.
        Assert.All(await Rows([first, second]), r => Assert.Equal(("queued", null, 0, null, null), (r.Status, r.ErrorCode, r.Attempts, r.WorkerId, r.StartedAt)));
    }

    [Fact]
    public async Task Process_StoreAccessInDoubt_ReleasedRowsStampedSentNowAndFinalRowsSettled()
    {
        // Their messages go back to the queue: unstamped, the re-publisher added a fresh copy of each every StuckAfterSeconds.
        // A row final already was sent back too, up to the send-back limit, for nothing.
        var queued = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        var done = await CompletedAsync(await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0))));
        _store.BeforeRead = key => throw Denied(key);
        var before = DateTime.UtcNow;

        var error = await Assert.ThrowsAsync<WorkerFaultException>(() => Processor().ProcessAsync([queued, done], CancellationToken.None));

        Assert.Equal([done.ClassificationId], error.Settled);
        var row = (await Rows([queued])).Single();
        Assert.Equal("queued", row.Status);
        Assert.True(row.PublishedAt >= before, $"published at {row.PublishedAt}");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Schedule_BatchFaultsAfterSomeRowsAreFinal_ThoseRowsAreAnnouncedAndNotTheReleasedOne(bool suspect)
    {
        // The store refuses every read, that of the image carried in its message too: a worker fault for any image read.
        _store.BeforeRead = key => throw Denied(key);
        var tooMany = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(120, 0, 0)), attempts: MaxAttempts);
        var low = TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0));
        var fresh = await AddAsync(low) with { ImageBytes = low };
        // A suspect is read alone once the rest is saved; else the batch's one pass faults before any save.
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)), attempts: suspect ? 2 : 0);
        ClassifyImage[] messages = suspect ? [fresh, refused, tooMany] : [refused, tooMany];
        await using var services = new ServiceCollection()
            .AddScoped(_ => Processor(_database.NewContext()))
            .AddScoped<ClassificationsFinishedNotifier>()
            .AddSingleton(TimeProvider.System)
            .AddPatientTestHarness()
            .BuildServiceProvider(true);
        var harness = services.GetRequiredService<ITestHarness>();
        await harness.Start();
        var lanes = new ModelLanes(new ModelOptions { InferenceLanes = 1 });
        var scheduler = new ClassificationBatchScheduler(services.GetRequiredService<IServiceScopeFactory>(),
            new WorkerOptions { BatchSize = messages.Length, PipelineDepth = 1, BatchWaitMs = 60_000 }, lanes, NullLogger<ClassificationBatchScheduler>.Instance);

        // Its lane held, the scheduler waits for the whole batch.
        await lanes.WaitAsync(CancellationToken.None);
        var consumed = messages.Select(m => scheduler.ClassifyAsync(m, null, CancellationToken.None)).ToList();
        lanes.Release();

        foreach (var message in consumed) await Assert.ThrowsAsync<WorkerFaultException>(() => message);
        Assert.True(await harness.Published.Any<ClassificationsFinished>());
        var announced = Assert.Single(harness.Published.Select<ClassificationsFinished>()).Context.Message.ClassificationIds;
        Guid[] final = suspect ? [fresh.ClassificationId, tooMany.ClassificationId] : [tooMany.ClassificationId];
        Assert.Equal(final.Order(), announced.Order());
        Assert.Equal("queued", (await Rows([refused])).Single().Status);
    }

    [Fact]
    public async Task Process_FirstPassRowClaimedAgainThenTheSuspectFaults_TheSupersededRowIsNotNamedFinished()
    {
        // As in the theory above: the store refuses every read, a suspect's pass faults after the first pass is saved.
        _store.BeforeRead = key => throw Denied(key);
        var tooMany = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(120, 0, 0)), attempts: MaxAttempts);
        var low = TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0));
        var taken = await AddAsync(low) with { ImageBytes = low };
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)), attempts: 2);
        // A duplicate delivery claims the fresh row just before the first pass saves it: that result is dropped.
        var claimAgain = new ClaimAgainBeforeSave(_database, taken.ClassificationId);
        await using var db = _database.NewContext(claimAgain);

        var fault = await Assert.ThrowsAsync<WorkerFaultException>(() => Processor(db).ProcessAsync([taken, refused, tooMany], CancellationToken.None));

        Assert.True(claimAgain.Claimed);
        Assert.Equal([tooMany.ClassificationId], fault.Finished);
        var rows = await Rows([taken, refused]);
        Assert.Equal(("processing", "worker-2"), (rows[0].Status, rows[0].WorkerId));
        Assert.Equal("queued", rows[1].Status);
    }

    [Fact]
    public async Task Process_ModelCannotBeLoaded_QueuedRowsStampedSentNowAndFinalRowsSettled()
    {
        var queued = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        var done = await CompletedAsync(await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0))));
        var gone = new ClassifyImage { ClassificationId = Guid.NewGuid(), ObjectKey = "objects/none", SubmittedAt = DateTimeOffset.UtcNow };
        var before = DateTime.UtcNow;

        var error = await Assert.ThrowsAsync<WorkerFaultException>(() => NoModelProcessor().ProcessAsync([queued, done, gone], CancellationToken.None));

        Assert.Equal([done.ClassificationId, gone.ClassificationId], error.Settled.Order());
        var rows = await Rows([queued, done]);
        Assert.True(rows.Single(r => r.Id == queued.ClassificationId).PublishedAt >= before);
        Assert.Null(rows.Single(r => r.Id == done.ClassificationId).PublishedAt);
    }

    [Fact]
    public async Task Process_FolderStoreMayOpenNoFile_AWorkerFaultThatLeavesItsRowsQueued()
    {
        // A volume owned by another uid: every file refused, as every object is to wrong credentials. Each row failed
        // image_unreadable at once.
        var earlier = await ServedEarlierAsync();
        var first = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        var second = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        _store.BeforeRead = key => throw new UnauthorizedAccessException($"Access to the path '/data/objects/{key}' is denied.");

        var error = await Assert.ThrowsAsync<WorkerFaultException>(() => Processor().ProcessAsync([first, second], CancellationToken.None));

        Assert.Contains($"checking object {earlier.ObjectKey}", error.Message);
        Assert.All(await Rows([first, second]), r => Assert.Equal(("queued", null, 0), (r.Status, r.ErrorCode, r.Attempts)));
    }

    [Fact]
    public async Task Process_StoreAnswers403ToALoneImageButStillServesAnObjectItServedBefore_ThatRowFailsUnreadable()
    {
        var earlier = await ServedEarlierAsync();
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        var probed = RefuseOnly(refused);

        var row = await ProcessRefusedAloneAsync(refused, probed, earlier.ObjectKey);

        Assert.Contains("answered 403 AccessDenied", row.Error);
    }

    [Fact]
    public async Task Process_StoreAnswers403ToTheOnlyImageReadFromItWhileItsNeighboursAreCarried_ThatRowFailsAloneAndTheRestComplete()
    {
        await ServedEarlierAsync();
        var low = TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0));
        var high = TestImages.SolidPng(8, 8, new Rgb24(120, 0, 0));
        var first = await AddAsync(low, stored: false) with { ImageBytes = low };
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        var last = await AddAsync(high, stored: false) with { ImageBytes = high };
        _store.BeforeRead = key => key == refused.ObjectKey ? throw Denied(key) : Task.CompletedTask;

        var outcome = await Processor().ProcessAsync([first, refused, last], CancellationToken.None);

        Assert.Equal(new BatchOutcome(3, 2, 1), outcome);
        var rows = await Rows([first, refused, last]);
        Assert.Equal([("completed", null), ("failed", ClassificationBatchProcessor.UnreadableImage), ("completed", null)],
            rows.Select(r => (r.Status, r.ErrorCode)));
    }

    [Fact]
    public async Task Process_StoreAnswers403ToALoneImageAndToTheObjectItServedBefore_AWorkerFaultThatLeavesItsRowsQueued()
    {
        await ServedEarlierAsync();
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        // The worker's reads were withdrawn since (a KMS key, a policy on presigned requests): every read is refused now,
        // though the store still answers a HEAD.
        _store.BeforeRead = key => throw Denied(key);

        var error = await Assert.ThrowsAsync<WorkerFaultException>(() => Processor().ProcessAsync([refused], CancellationToken.None));

        Assert.Contains("failed too", error.Message);
        var row = (await Rows([refused])).Single();
        Assert.Equal(("queued", null, 0), (row.Status, row.ErrorCode, row.Attempts));
    }

    [Fact]
    public async Task Process_StoreAnswers403ToALoneImageAndTheObjectItServedBeforeIsGone_AWorkerFaultThatLeavesItsRowsQueued()
    {
        var earlier = await ServedEarlierAsync();
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        await _store.DeleteAsync(earlier.ObjectKey, CancellationToken.None);
        _store.BeforeRead = key => key == refused.ObjectKey ? throw Denied(key) : Task.CompletedTask;

        var error = await Assert.ThrowsAsync<WorkerFaultException>(() => Processor().ProcessAsync([refused], CancellationToken.None));

        Assert.Contains($"the objects it could check its access with are gone ({earlier.ObjectKey})", error.Message);
        Assert.Equal(("queued", null, 0), (await Rows([refused])).Select(r => (r.Status, r.ErrorCode, r.Attempts)).Single());
        // Forgotten: a later batch refused throughout does not read it again.
        Assert.Null(_probes.Served);
    }

    [Fact]
    public async Task Process_StoreAnswers403ToALoneImageAndTheObjectItServedBeforeIsGoneButACarriedOneIsServed_ThatRowFailsUnreadable()
    {
        // The served object was removed (a load test's clean-up): the next object the worker knows is tried.
        var low = TestImages.SolidPng(8, 8, new Rgb24(60, 0, 0));
        var carried = await AddAsync(low) with { ImageBytes = low };
        Assert.Equal(new BatchOutcome(1, 1, 0), await Processor().ProcessAsync([carried], CancellationToken.None));
        var earlier = await ServedEarlierAsync();
        await _store.DeleteAsync(earlier.ObjectKey, CancellationToken.None);
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        var probed = RefuseOnly(refused);

        await ProcessRefusedAloneAsync(refused, probed, earlier.ObjectKey, carried.ObjectKey);
    }

    [Fact]
    public async Task Process_StoreAnswers403ToNewObjectsOnlyWhileStillServingOneItServedBefore_AWorkerFaultThatLeavesItsRowsQueued()
    {
        // A refusal of what was stored lately (a rotated or withdrawn encryption key) spares the old object the worker read
        // before: this batch's carried image, stored as the refused one was, is checked first, and is refused too.
        var earlier = await ServedEarlierAsync();
        var low = TestImages.SolidPng(8, 8, new Rgb24(60, 0, 0));
        var carried = await AddAsync(low) with { ImageBytes = low };
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        var probed = new List<string>();
        _store.BeforeRead = key =>
        {
            if (key != refused.ObjectKey) probed.Add(key);
            return key == earlier.ObjectKey ? Task.CompletedTask : throw Denied(key);
        };

        var error = await Assert.ThrowsAsync<WorkerFaultException>(() => Processor().ProcessAsync([carried, refused], CancellationToken.None));

        Assert.Equal([carried.ObjectKey], probed);
        Assert.Contains("in this batch, failed too", error.Message);
        Assert.All(await Rows([carried, refused]), r => Assert.Equal(("queued", null, 0), (r.Status, r.ErrorCode, r.Attempts)));
    }

    [Fact]
    public async Task Process_StoreAnswers403ToALoneImageOnAWorkerItServedNothingYet_AWorkerFaultThatLeavesItsRowsQueued()
    {
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        var probes = 0;
        _store.BeforeRead = key =>
        {
            if (key != refused.ObjectKey) probes++;
            throw Denied(key);
        };

        var error = await Assert.ThrowsAsync<WorkerFaultException>(() => Processor().ProcessAsync([refused], CancellationToken.None));

        Assert.Contains("read no object yet", error.Message);
        Assert.Equal(0, probes);
        Assert.Equal(("queued", null, 0), (await Rows([refused])).Select(r => (r.Status, r.ErrorCode, r.Attempts)).Single());
    }

    [Fact]
    public async Task Process_StoreAnswers403ToTheOnlyImageNotCarriedOnAFreshWorkerButServesACarriedOnesObject_ThatRowFailsAloneAndTheRestComplete()
    {
        // The API stores every image before it sends its message: a carried image's object shows the worker may read.
        var low = TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0));
        var carried = await AddAsync(low) with { ImageBytes = low };
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        var probed = RefuseOnly(refused);

        var outcome = await Processor().ProcessAsync([carried, refused], CancellationToken.None);

        Assert.Equal(new BatchOutcome(2, 1, 1), outcome);
        Assert.Equal([carried.ObjectKey], probed);
        var rows = await Rows([carried, refused]);
        Assert.Equal([("completed", null), ("failed", ClassificationBatchProcessor.UnreadableImage)], rows.Select(r => (r.Status, r.ErrorCode)));
        Assert.Contains("answered 403 AccessDenied", rows[1].Error);
    }

    [Fact]
    public async Task Process_StoreAnswers403ToTheOnlyImageNotCarriedOnAFreshWorkerAndToACarriedOnesObject_AWorkerFaultThatLeavesItsRowsQueued()
    {
        var low = TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0));
        var carried = await AddAsync(low) with { ImageBytes = low };
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        var probed = new List<string>();
        _store.BeforeRead = key =>
        {
            if (key != refused.ObjectKey) probed.Add(key);
            throw Denied(key);
        };

        var error = await Assert.ThrowsAsync<WorkerFaultException>(() => Processor().ProcessAsync([carried, refused], CancellationToken.None));

        Assert.Equal([carried.ObjectKey], probed);
        Assert.Contains($"checking object {carried.ObjectKey}, the stored copy of an image that came in its message in this batch, failed too", error.Message);
        Assert.Empty(_classifier.BatchSizes);
        Assert.All(await Rows([carried, refused]), r => Assert.Equal(("queued", null, 0), (r.Status, r.ErrorCode, r.Attempts)));
    }

    [Fact]
    public async Task Process_StoreAnswers403ToALoneImageOnAWorkerGivenOnlyCarriedImagesBefore_ThatRowFailsUnreadable()
    {
        var low = TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0));
        var earlier = await AddAsync(low) with { ImageBytes = low };
        Assert.Equal(new BatchOutcome(1, 1, 0), await Processor().ProcessAsync([earlier], CancellationToken.None));
        Assert.Equal(0, _store.Reads);
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        var probed = RefuseOnly(refused);

        await ProcessRefusedAloneAsync(refused, probed, earlier.ObjectKey);
    }

    [Fact]
    public async Task Process_StoreAnswers403ToAnImageAnotherRowOfTheBatchCarried_ThatObjectIsNotTheCheckAndItIsAWorkerFaultThatLeavesItsRowsQueued()
    {
        // Two classifications of one image (content-addressed), the re-publisher's message without its bytes: the carried
        // row's object is the refused one, which says nothing about the worker's access.
        var low = TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0));
        var carried = await AddAsync(low) with { ImageBytes = low };
        var refused = await AnotherRowOfAsync(carried);
        var reads = 0;
        _store.BeforeRead = key =>
        {
            reads++;
            throw Denied(key);
        };

        var error = await Assert.ThrowsAsync<WorkerFaultException>(() => Processor().ProcessAsync([carried, refused], CancellationToken.None));

        Assert.Equal(1, reads);
        Assert.Contains("the only objects this worker could check its access with are among those refused", error.Message);
        Assert.All(await Rows([carried, refused]), r => Assert.Equal(("queued", null, 0), (r.Status, r.ErrorCode, r.Attempts)));
    }

    [Fact]
    public async Task Process_StoreRefusesAKeyItCannotNameInALoneImage_ThatRowFailsUnreadable()
    {
        // A key the client cannot use is about that object whatever the other reads do.
        var only = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        _store.BeforeRead = key => throw new ObjectStoreResponseException($"object store GET {key} answered 400 InvalidArgument", HttpStatusCode.BadRequest, "InvalidArgument");

        var outcome = await Processor().ProcessAsync([only], CancellationToken.None);

        Assert.Equal(new BatchOutcome(1, 0, 1), outcome);
        Assert.Equal(ClassificationBatchProcessor.UnreadableImage, (await Rows([only])).Single().ErrorCode);
    }

    [Fact]
    public async Task Process_StoreFailsOneObjectForNow_TheBatchFailsForARetryAndNothingIsSaved()
    {
        var good = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        var slow = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        _store.BeforeRead = key => key == slow.ObjectKey
            ? throw new ObjectStoreResponseException($"object store GET {key} answered 503 SlowDown", HttpStatusCode.ServiceUnavailable, "SlowDown")
            : Task.CompletedTask;

        await Assert.ThrowsAsync<ObjectStoreResponseException>(() => Processor().ProcessAsync([good, slow], CancellationToken.None));

        Assert.Empty(_classifier.BatchSizes);
        Assert.All(await Rows([good, slow]), r => Assert.Equal(("processing", null), (r.Status, r.ErrorCode)));
    }

    [Fact]
    public async Task Process_ImageCarriedInTheMessage_ClassifiedWithoutReadingTheStore()
    {
        var image = TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0));
        var message = await AddAsync(image, stored: false) with { ImageBytes = image };

        var outcome = await Processor().ProcessAsync([message], CancellationToken.None);

        Assert.Equal(new BatchOutcome(1, 1, 0), outcome);
        Assert.Equal(0, _store.Reads);
        Assert.Equal("high", (await Rows([message])).Single().PredictedClass);
    }

    [Fact]
    public async Task Process_MessageCarriesOtherBytesThanItsImage_TheStoresCopyIsClassified()
    {
        var own = TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0));
        var message = await AddAsync(own);
        // Same length, other pixels: only the hash tells them apart.
        var other = TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0));
        Assert.Equal(own.Length, other.Length);

        var outcome = await Processor().ProcessAsync([message with { ImageBytes = other }], CancellationToken.None);

        Assert.Equal(new BatchOutcome(1, 1, 0), outcome);
        Assert.Equal(1, _store.Reads);
        Assert.Equal("high", (await Rows([message])).Single().PredictedClass);
    }

    [Fact]
    public async Task Process_ModelThrows_RowsStayMarkedProcessingForTheRedelivery()
    {
        var message = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        _classifier.Failure = new InvalidOperationException("model crashed");

        await Assert.ThrowsAsync<InvalidOperationException>(() => Processor().ProcessAsync([message], CancellationToken.None));

        var row = (await Rows([message])).Single();
        Assert.Equal(("processing", 1, "worker-1"), (row.Status, row.Attempts, row.WorkerId));
        Assert.NotNull(row.StartedAt);
    }

    [Fact]
    public async Task Process_ModelCannotBeLoaded_AWorkerFaultThatClaimsNothing()
    {
        // A worker that cannot load the active model (its artifact missing or corrupt) takes its messages again and again.
        var message = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        var processor = NoModelProcessor();

        for (var i = 0; i <= MaxAttempts; i++)
        {
            var error = await Assert.ThrowsAsync<WorkerFaultException>(() => processor.ProcessAsync([message], CancellationToken.None));
            Assert.Contains("no model to classify with: model.onnx is missing", error.Message);
        }

        Assert.Equal(0, _store.Reads);
        var row = (await Rows([message])).Single();
        Assert.Equal(("queued", null, 0, null), (row.Status, row.ErrorCode, row.Attempts, row.WorkerId));
    }

    [Fact]
    public async Task Process_StoreHasNoneOfTheImagesNorTheObjectItServedBefore_AWorkerFaultThatLeavesItsRowsQueued()
    {
        // A mistyped bucket (created empty at start) or an unmounted volume: every object is missing, the one that was
        // served before as well. The API stores each image before sending its message, so the images are not lost.
        var earlier = await ServedEarlierAsync();
        var first = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)), stored: false);
        var second = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)), stored: false);
        await _store.DeleteAsync(earlier.ObjectKey, CancellationToken.None);

        var error = await Assert.ThrowsAsync<WorkerFaultException>(() => Processor().ProcessAsync([first, second], CancellationToken.None));

        Assert.Contains("had none of the images this batch asked it for", error.Message);
        // What each row fails with should its message be sent back too often.
        Assert.Equal([ClassificationBatchProcessor.MissingImage, ClassificationBatchProcessor.MissingImage],
            [error.RowErrors[first.ClassificationId].Code, error.RowErrors[second.ClassificationId].Code]);
        Assert.Single(_classifier.BatchSizes);
        Assert.All(await Rows([first, second]), r => Assert.Equal(("queued", null, 0, null, null), (r.Status, r.ErrorCode, r.Attempts, r.WorkerId, r.StartedAt)));
    }

    [Fact]
    public async Task Process_StoreHasNoneOfTheImagesButServesTheObjectItServedBefore_TheirRowsFailMissing()
    {
        var earlier = await ServedEarlierAsync();
        var first = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)), stored: false);
        var second = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)), stored: false);
        var probed = new List<string>();
        _store.BeforeRead = key =>
        {
            probed.Add(key);
            return Task.CompletedTask;
        };

        var outcome = await Processor().ProcessAsync([first, second], CancellationToken.None);

        Assert.Equal(new BatchOutcome(2, 0, 2), outcome);
        Assert.Equal(earlier.ObjectKey, probed.Last());
        Assert.All(await Rows([first, second]), r => Assert.Equal(("failed", ClassificationBatchProcessor.MissingImage), (r.Status, r.ErrorCode)));
    }

    [Fact]
    public async Task Process_StoreAnswers403AndNotFoundToTheImagesAndRefusesTheObjectItServedBefore_AWorkerFaultThatLeavesItsRowsQueued()
    {
        // A policy that allows ListBucket but denies GetObject: S3 answers 404 for a missing key and 403 for the others. A
        // mixed batch was never checked, so every row failed.
        var earlier = await ServedEarlierAsync();
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        var missing = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)), stored: false);
        _store.BeforeRead = key => key == missing.ObjectKey ? Task.CompletedTask : throw Denied(key);

        var error = await Assert.ThrowsAsync<WorkerFaultException>(() => Processor().ProcessAsync([refused, missing], CancellationToken.None));

        Assert.Contains("answered 403 or not found to every image", error.Message);
        Assert.Contains($"checking object {earlier.ObjectKey}", error.Message);
        Assert.All(await Rows([refused, missing]), r => Assert.Equal(("queued", null, 0), (r.Status, r.ErrorCode, r.Attempts)));
    }

    [Fact]
    public async Task Process_StoreAnswers403AndNotFoundToTheImagesButServesTheObjectItServedBefore_EachRowFailsWithItsOwnError()
    {
        var earlier = await ServedEarlierAsync();
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        var missing = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)), stored: false);
        var probed = RefuseOnly(refused);

        var outcome = await Processor().ProcessAsync([refused, missing], CancellationToken.None);

        Assert.Equal(new BatchOutcome(2, 0, 2), outcome);
        Assert.Equal([missing.ObjectKey, earlier.ObjectKey], probed);
        Assert.Equal([ClassificationBatchProcessor.UnreadableImage, ClassificationBatchProcessor.MissingImage], (await Rows([refused, missing])).Select(r => r.ErrorCode));
    }

    [Fact]
    public async Task Process_StoreHasNoImageOnAWorkerItServedNothingYet_AWorkerFaultThatLeavesItsRowQueued()
    {
        var missing = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)), stored: false);

        var error = await Assert.ThrowsAsync<WorkerFaultException>(() => Processor().ProcessAsync([missing], CancellationToken.None));

        Assert.Contains("this worker has read no object yet", error.Message);
        Assert.Equal(("queued", null, 0), (await Rows([missing])).Select(r => (r.Status, r.ErrorCode, r.Attempts)).Single());
    }

    [Fact]
    public async Task Process_StoreHasNoImageOnAWorkerItServedNothingYetButAnImageWasClassified_ThatRowFailsMissing()
    {
        // A freshly started worker whose only traffic is a missing image sent it back for ever: nothing of its own to check
        // its access with. The image of a row completed (by another worker) is.
        var done = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        await Db.Classifications.Where(c => c.Id == done.ClassificationId).ExecuteUpdateAsync(s => s
            .SetProperty(c => c.Status, ClassificationStatus.Completed).SetProperty(c => c.CompletedAt, DateTime.UtcNow));
        var missing = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)), stored: false);
        var probed = new List<string>();
        _store.BeforeRead = key =>
        {
            probed.Add(key);
            return Task.CompletedTask;
        };

        var outcome = await Processor().ProcessAsync([missing], CancellationToken.None);

        Assert.Equal(new BatchOutcome(1, 0, 1), outcome);
        Assert.Equal([missing.ObjectKey, done.ObjectKey], probed);
        Assert.Equal(("failed", ClassificationBatchProcessor.MissingImage), (await Rows([missing])).Select(r => (r.Status, r.ErrorCode)).Single());
    }

    [Fact]
    public async Task Process_StoreAnswers403ToALoneImageOnAWorkerItServedNothingYetWhileServingAnOlderClassifiedImage_AWorkerFaultThatLeavesItsRowQueued()
    {
        // A refusal of new objects alone (a rotated KMS key, a policy change): the older image of a completed row is still
        // served, which cleared the refusal and failed the new row image_unreadable on every fresh worker.
        var done = await CompletedAsync(await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0))));
        var refused = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)));
        _store.BeforeRead = key => key == done.ObjectKey ? Task.CompletedTask : throw Denied(key);

        await Assert.ThrowsAsync<WorkerFaultException>(() => Processor().ProcessAsync([refused], CancellationToken.None));

        Assert.Equal(("queued", null, 0), (await Rows([refused])).Select(r => (r.Status, r.ErrorCode, r.Attempts)).Single());
    }

    [Fact]
    public async Task Process_FreshWorkerFaultsTwiceWithinAMinute_TheCompletedImageIsLookedUpOnceAndOnlyAmongCompletedTimes()
    {
        // Every faulted batch of a fresh worker queried the database; on PostgreSQL the descending order put the unfinished
        // rows' NULL completed_at first, so the index scan passed all of them.
        var commands = new CommandLog();
        await using var db = _database.NewContext(commands);
        var first = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)), stored: false);
        var second = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(250, 0, 0)), stored: false);

        foreach (var message in new[] { first, second })
            await Assert.ThrowsAsync<WorkerFaultException>(() => Processor(db).ProcessAsync([message], CancellationToken.None));

        var lookup = Assert.Single(commands.Texts, t => t.Contains(ClassificationBatchProcessor.CompletedImageQueryTag));
        Assert.Contains("\"completed_at\" IS NOT NULL", lookup);
    }

    /// <summary>A batch whose image the store served this worker, classified before the test's own.</summary>
    private async Task<ClassifyImage> ServedEarlierAsync()
    {
        var earlier = await AddAsync(TestImages.SolidPng(8, 8, new Rgb24(10, 0, 0)));
        Assert.Equal(new BatchOutcome(1, 1, 0), await Processor().ProcessAsync([earlier], CancellationToken.None));
        return earlier;
    }

    /// <summary>
    /// Processes <paramref name="refused"/> alone and checks that its row failed <c>image_unreadable</c> after the access
    /// check read exactly <paramref name="expectedProbes"/>, in order; returns the row.
    /// </summary>
    private async Task<Classification> ProcessRefusedAloneAsync(ClassifyImage refused, List<string> probed, params string[] expectedProbes)
    {
        var outcome = await Processor().ProcessAsync([refused], CancellationToken.None);

        Assert.Equal(new BatchOutcome(1, 0, 1), outcome);
        Assert.Equal(expectedProbes, probed);
        var row = (await Rows([refused])).Single();
        Assert.Equal(("failed", ClassificationBatchProcessor.UnreadableImage), (row.Status, row.ErrorCode));
        return row;
    }

    /// <summary>The store answers 403 for <paramref name="refused"/>'s object and serves every other; returns the other keys read, in order.</summary>
    private List<string> RefuseOnly(ClassifyImage refused)
    {
        var probed = new List<string>();
        _store.BeforeRead = key =>
        {
            if (key == refused.ObjectKey) throw Denied(key);
            probed.Add(key);
            return Task.CompletedTask;
        };
        return probed;
    }

    private static ObjectStoreResponseException Denied(string key) =>
        new($"object store GET {key} answered 403 AccessDenied", HttpStatusCode.Forbidden, "AccessDenied");

    private ClassificationBatchProcessor Processor(int maxAttempts = MaxAttempts) => Processor(Db, maxAttempts);

    private ClassificationBatchProcessor Processor(ClassifierDbContext db, int maxAttempts = MaxAttempts) =>
        new(db, _store, new FixedModelProvider(_classifier), new WorkerOptions { Id = "worker-1", DecodeParallelism = 2, MaxAttempts = maxAttempts },
            new BatchTensorPool(maxRetained: 2), new ModelLanes(new ModelOptions { InferenceLanes = 1 }), _probes, TimeProvider.System,
            NullLogger<ClassificationBatchProcessor>.Instance);

    private ClassificationBatchProcessor NoModelProcessor() =>
        new(Db, _store, new ThrowingModelProvider(), new WorkerOptions { Id = "worker-1", MaxAttempts = MaxAttempts },
            new BatchTensorPool(maxRetained: 2), new ModelLanes(new ModelOptions { InferenceLanes = 1 }), _probes, TimeProvider.System,
            NullLogger<ClassificationBatchProcessor>.Instance);

    /// <summary>Marks <paramref name="message"/>'s row completed (by another worker), now.</summary>
    private async Task<ClassifyImage> CompletedAsync(ClassifyImage message)
    {
        await Db.Classifications.Where(c => c.Id == message.ClassificationId).ExecuteUpdateAsync(s => s
            .SetProperty(c => c.Status, ClassificationStatus.Completed).SetProperty(c => c.CompletedAt, DateTime.UtcNow));
        return message;
    }

    /// <param name="stored">False records the image without putting it in the store.</param>
    /// <param name="attempts">Claims the row has had already.</param>
    private async Task<ClassifyImage> AddAsync(byte[]? content, bool stored = true, int attempts = 0)
    {
        var key = $"objects/{Guid.NewGuid():N}";
        if (content is not null && stored) await _store.PutAsync(key, content, "image/png", CancellationToken.None);
        var hash = content is null ? key : Convert.ToHexStringLower(SHA256.HashData(content));
        var image = new StoredImage { Id = Guid.NewGuid(), ObjectKey = key, ContentHash = hash, Format = "png", SizeBytes = content?.Length ?? 1, CreatedAt = DateTime.UtcNow };
        var row = new Classification
        {
            Id = Guid.CreateVersion7(),
            Image = image,
            CreatedAt = DateTime.UtcNow.AddMilliseconds(-5),
            Status = attempts > 0 ? ClassificationStatus.Processing : ClassificationStatus.Queued,
            Attempts = attempts,
        };
        Db.Classifications.Add(row);
        await Db.SaveChangesAsync();
        Db.ChangeTracker.Clear();
        return new ClassifyImage { ClassificationId = row.Id, ObjectKey = key, SubmittedAt = DateTimeOffset.UtcNow };
    }

    /// <summary>A second classification of the image <paramref name="message"/> classifies, sent without its bytes.</summary>
    private async Task<ClassifyImage> AnotherRowOfAsync(ClassifyImage message)
    {
        var imageId = (await Db.Classifications.AsNoTracking().SingleAsync(c => c.Id == message.ClassificationId)).ImageId;
        var row = new Classification { Id = Guid.CreateVersion7(), ImageId = imageId, CreatedAt = DateTime.UtcNow.AddMilliseconds(-5), Status = ClassificationStatus.Queued };
        Db.Classifications.Add(row);
        await Db.SaveChangesAsync();
        Db.ChangeTracker.Clear();
        return new ClassifyImage { ClassificationId = row.Id, ObjectKey = message.ObjectKey, SubmittedAt = DateTimeOffset.UtcNow };
    }

    private async Task<List<Classification>> Rows(IEnumerable<ClassifyImage> messages)
    {
        Db.ChangeTracker.Clear();
        var ids = messages.Select(m => m.ClassificationId).ToList();
        var rows = await Db.Classifications.AsNoTracking().Where(c => ids.Contains(c.Id)).ToListAsync();
        return ids.Select(id => rows.Single(r => r.Id == id)).ToList();
    }

    private ClassifierDbContext Db => _database.Context;

    public void Dispose() => _database.Dispose();

    /// <summary>Picks a class from the red value of each image's first pixel, so a misplaced tensor slot shows up.</summary>
    private sealed class RedChannelClassifier : IImageClassifier
    {
        public List<int> BatchSizes { get; } = [];

        /// <summary>Each call's images, by the red value of their first pixel.</summary>
        public List<float[]> Reds { get; } = [];

        /// <summary>Runs inside each call, given its images' red values: what happens while the model runs.</summary>
        public Action<float[]>? OnClassify { get; set; }

        /// <summary>Given each call's output before it is returned, which it may change.</summary>
        public Action<float[][]>? OnOutput { get; set; }

        public ModelCard Card { get; } = new()
        {
            Version = "fake-1",
            Labels = Labels,
            Onnx = "fake.onnx",
            Input = new ModelInputSpec { Width = 4, Height = 4 },
        };

        public Exception? Failure { get; set; }

        public float[][] Classify(ReadOnlyMemory<float> batch, int count)
        {
            if (Failure is not null) throw Failure;
            var length = 3 * 4 * 4;
            var reds = Enumerable.Range(0, count).Select(i => batch.Span[i * length]).ToArray();
            OnClassify?.Invoke(reds);
            BatchSizes.Add(count);
            Reds.Add(reds);
            var output = Enumerable.Range(0, count).Select(i =>
            {
                var red = batch.Span[i * length];
                var best = red < 80 ? 0 : red < 200 ? 1 : 2;
                return Enumerable.Range(0, 3).Select(k => k == best ? 0.8f : 0.1f).ToArray();
            }).ToArray();
            OnOutput?.Invoke(output);
            return output;
        }

        public void Dispose()
        {
        }
    }

    /// <summary>Claims <paramref name="id"/> as worker-2 just before the first save that holds its result.</summary>
    private sealed class ClaimAgainBeforeSave(InMemoryDatabase database, Guid id) : SaveChangesInterceptor
    {
        public bool Claimed { get; private set; }

        public override async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result,
            CancellationToken cancellationToken = default)
        {
            if (!Claimed && eventData.Context!.ChangeTracker.Entries<Classification>().Any(e => e.Entity.Id == id && ClassificationStatus.IsFinal(e.Entity.Status)))
            {
                Claimed = true;
                await using var other = database.NewContext();
                await other.ClaimAsync([id], "worker-2", DateTime.UtcNow, MaxAttempts, cancellationToken);
            }
            return result;
        }
    }

    /// <summary>The text of every query a context ran.</summary>
    private sealed class CommandLog : DbCommandInterceptor
    {
        public List<string> Texts { get; } = [];

        public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        {
            lock (Texts) Texts.Add(command.CommandText);
            return base.ReaderExecutingAsync(command, eventData, result, cancellationToken);
        }
    }

    /// <summary>A worker that cannot load the registry's active model.</summary>
    private sealed class ThrowingModelProvider : IModelProvider
    {
        public ModelCard? LoadedCard => null;

        public Task<ModelLease> AcquireAsync(CancellationToken cancellationToken) => throw new FileNotFoundException("model.onnx is missing");
    }

    private sealed class FixedModelProvider(IImageClassifier classifier) : IModelProvider
    {
        public ModelCard? LoadedCard => classifier.Card;

        public Task<ModelLease> AcquireAsync(CancellationToken cancellationToken) => Task.FromResult(new ModelLease(new SharedModel(classifier)));
    }
}
