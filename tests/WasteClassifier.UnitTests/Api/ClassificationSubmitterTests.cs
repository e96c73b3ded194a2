using System.Security.Cryptography;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Api.Ingestion;
using WasteClassifier.Api.Security;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Api;

/// <summary>
/// A new image and its classification are recorded in one save (one transaction); when a concurrent upload of the same
/// bytes recorded the image first, the submission uses that upload's image row.
/// </summary>
public sealed class ClassificationSubmitterTests : IDisposable
{
    private readonly SqliteConnection _connection = new("Data Source=:memory:");
    private readonly SaveCounter _saves = new();
    private readonly byte[] _png = TestImages.SolidPng(32, 32, new Rgb24(10, 200, 10));
    private readonly SeenContentHashes _seen = new();
    private readonly ClassificationResultWaiter _waiter =
        new(new ServiceCollection().BuildServiceProvider().GetRequiredService<IServiceScopeFactory>(), NullLogger<ClassificationResultWaiter>.Instance);

    public ClassificationSubmitterTests()
    {
        _connection.Open();
        using var db = NewContext();
        db.Database.EnsureCreated();
    }

    [Fact]
    public async Task Submit_NewImage_ImageAndClassificationSavedTogether()
    {
        await using var db = NewContext(_saves);

        var result = await Submitter(db).SubmitAsync([Upload()], source: null, idempotencyKey: null, CancellationToken.None);

        Assert.Single(result.Items);
        Assert.Equal(1, _saves.Count);
        await using var check = NewContext();
        var row = await check.Classifications.Include(c => c.Image).SingleAsync();
        Assert.Equal(Hash(_png), row.Image!.ContentHash);
        // This process's long polls for it can skip their first read until a result is announced.
        Assert.True(_waiter.IsQueuedHere(row.Id));
    }

    [Fact]
    public async Task Submit_NewImage_NoLookupBeforeTheInsert()
    {
        var commands = new CommandLog();
        await using var db = NewContext(commands);

        await Submitter(db).SubmitAsync([Upload()], source: null, idempotencyKey: null, CancellationToken.None);

        // Bytes this process has never met go straight to the insert: one round trip.
        Assert.DoesNotContain(commands.Texts, text => text.TrimStart().StartsWith("SELECT", StringComparison.OrdinalIgnoreCase) && text.Contains("\"images\""));
        Assert.True(_seen.Contains(Hash(_png)));
    }

    [Fact]
    public async Task Submit_SameBytesTwice_SecondReusesTheImageRowWithoutAFailedSave()
    {
        await using (var first = NewContext()) await Submitter(first).SubmitAsync([Upload()], source: null, idempotencyKey: null, CancellationToken.None);
        await using var db = NewContext(_saves);

        await Submitter(db).SubmitAsync([Upload()], source: null, idempotencyKey: null, CancellationToken.None);

        Assert.Equal(1, _saves.Count);
        Assert.Equal(0, _saves.Failed);
        await using var check = NewContext();
        var image = await check.Images.SingleAsync();
        Assert.All(await check.Classifications.ToListAsync(), row => Assert.Equal(image.Id, row.ImageId));
    }

    [Fact]
    public async Task Submit_BytesAnotherProcessRecorded_FirstSaveFailsAndTheRetryUsesItsRow()
    {
        // Recorded by another API process (or before a restart): this one has not met the hash, so it inserts first.
        var hash = Hash(_png);
        var existing = Guid.NewGuid();
        await using (var other = NewContext())
        {
            other.Images.Add(new StoredImage
            {
                Id = existing,
                ObjectKey = ImageIntake.ObjectKeyFor(hash),
                ContentHash = hash,
                SizeBytes = _png.Length,
                Format = "png",
                CreatedAt = DateTime.UtcNow,
            });
            await other.SaveChangesAsync();
        }
        await using var db = NewContext(_saves);

        var result = await Submitter(db).SubmitAsync([Upload()], source: null, idempotencyKey: null, CancellationToken.None);

        Assert.Single(result.Items);
        Assert.Equal(1, _saves.Failed);
        await using var check = NewContext();
        Assert.Equal(existing, (await check.Images.SingleAsync()).Id);
        Assert.Equal(existing, (await check.Classifications.SingleAsync()).ImageId);
    }

    [Fact]
    public async Task Submit_SameBytesRecordedConcurrently_UsesTheWinnersImageRow()
    {
        var winner = new ConcurrentUploadFirst(this);
        await using var db = NewContext(winner);

        var result = await Submitter(db).SubmitAsync([Upload()], source: "line-1", idempotencyKey: null, CancellationToken.None);

        Assert.Single(result.Items);
        await using var check = NewContext();
        var image = await check.Images.SingleAsync();
        Assert.Equal(winner.ImageId, image.Id);
        var row = await check.Classifications.SingleAsync();
        Assert.Equal(result.Items[0].Id, row.Id);
        Assert.Equal(winner.ImageId, row.ImageId);
    }

    [Fact]
    public async Task Submit_CommitWhoseAnswerWasLost_ThoseRowsAnsweredAndNoSecondSet()
    {
        // As PostgreSQL's retrying strategy meets it: the commit went through, its answer did not, and the retried INSERT
        // failed on the rows' own keys.
        await using var db = NewContext(new AnswerLostAfterCommit());

        var result = await Submitter(db).SubmitAsync([Upload()], source: null, idempotencyKey: null, CancellationToken.None);

        await using var check = NewContext();
        // Not a second row with the first one left unsent: the re-publisher would have classified the image twice.
        var row = await check.Classifications.SingleAsync();
        Assert.Equal(row.Id, Assert.Single(result.Items).Id);
        Assert.True(_waiter.IsQueuedHere(row.Id));
    }

    [Fact]
    public async Task Submit_RetriesRunOutAfterTheCommitWentThrough_ThoseRowsAnswered()
    {
        // PostgreSQL's retrying strategy gave up (the database away for its retries) after a first try whose COMMIT landed:
        // a 503 for rows that were recorded, and a client without an Idempotency-Key that retried recorded a second set.
        var lost = new RetriesRunOut<Classification>(afterCommit: true);
        await using var db = NewContext(lost);

        var result = await Submitter(db).SubmitAsync([Upload()], source: null, idempotencyKey: null, CancellationToken.None);

        Assert.True(lost.Fired);
        await using var check = NewContext();
        var row = await check.Classifications.SingleAsync();
        Assert.Equal(row.Id, Assert.Single(result.Items).Id);
        Assert.True(_waiter.IsQueuedHere(row.Id));
    }

    [Fact]
    public async Task Submit_RetriesRunOutAndNothingCommitted_StillAnOutage()
    {
        var lost = new RetriesRunOut<Classification>(afterCommit: false);
        await using var db = NewContext(lost);

        var thrown = await Record.ExceptionAsync(() => Submitter(db).SubmitAsync([Upload()], source: null, idempotencyKey: null, CancellationToken.None));

        Assert.True(lost.Fired);
        Assert.True(thrown is not null && DependencyFailures.IsUnavailable(thrown), thrown?.ToString());
        await using var check = NewContext();
        Assert.Empty(await check.Classifications.ToListAsync());
    }

    [Fact]
    public async Task Submit_KeyReusedWithOtherFiles_RefusedAndNothingStored()
    {
        var key = new IdempotencyKey("", "batch-1");
        await using (var first = NewContext()) await Submitter(first).SubmitAsync([Upload()], "cam-a", key, CancellationToken.None);
        await using var db = NewContext();
        var other = TestImages.SolidPng(32, 32, new Rgb24(200, 10, 10));

        var result = await Submitter(db).SubmitAsync([new UploadedImage(0, "b.png", "image/png", other.Length, other)], "cam-a", key, CancellationToken.None);

        // It was answered with the first request's ids (replayed), and these bytes were never stored.
        Assert.True(result.KeyReused);
        Assert.Empty(result.Items);
        await using var check = NewContext();
        Assert.Single(await check.Classifications.ToListAsync());
        Assert.Single(await check.Images.ToListAsync());
    }

    [Theory]
    [InlineData("cam-b", 1)] // another source
    [InlineData("cam-a", 2)] // another file after the same one
    public async Task Submit_KeyReusedWithOtherSourceOrFileCount_Refused(string source, int files)
    {
        var key = new IdempotencyKey("", "batch-1");
        await using (var first = NewContext()) await Submitter(first).SubmitAsync([Upload()], "cam-a", key, CancellationToken.None);
        await using var db = NewContext();
        var other = TestImages.SolidPng(16, 16, new Rgb24(1, 2, 3));
        UploadedImage[] request = files == 1 ? [Upload()] : [Upload(), new UploadedImage(1, "c.png", "image/png", other.Length, other)];

        Assert.True((await Submitter(db).SubmitAsync(request, source, key, CancellationToken.None)).KeyReused);
    }

    [Fact]
    public async Task Submit_SameKeyFromAnotherCaller_RecordedAsThatCallersOwn()
    {
        await using (var first = NewContext()) await Submitter(first).SubmitAsync([Upload()], null, new IdempotencyKey("camera-a", "frame-7"), CancellationToken.None);
        await using var db = NewContext();
        var other = TestImages.SolidPng(32, 32, new Rgb24(200, 10, 10));

        var result = await Submitter(db).SubmitAsync([new UploadedImage(0, "b.png", "image/png", other.Length, other)], null, new IdempotencyKey("camera-b", "frame-7"),
            CancellationToken.None);

        // Camera B's frame was answered with camera A's id and never stored.
        Assert.False(result.Replayed);
        Assert.False(result.KeyReused);
        await using var check = NewContext();
        Assert.Equal(2, await check.Classifications.CountAsync());
        Assert.Equal(Hash(other), (await check.Classifications.Include(c => c.Image).SingleAsync(c => c.Id == result.Items[0].Id)).Image!.ContentHash);
    }

    [Fact]
    public async Task Submit_RepeatWithTheSameFilesOrEmptyPlaceholders_ReplaysTheFirstRequest()
    {
        // A good file and a refused one, as wastectl sends them; it repeats a batch with an empty file in place of one gone since.
        var key = new IdempotencyKey("", "ingest-0123");
        byte[] garbage = [1, 2, 3, 4, 5];
        UploadedImage Garbage(byte[] bytes) => new(1, "b.png", "image/png", bytes.Length, bytes);
        SubmissionResult first;
        await using (var db = NewContext()) first = await Submitter(db).SubmitAsync([Upload(), Garbage(garbage)], "line-1", key, CancellationToken.None);
        Assert.Single(first.Rejected);

        foreach (var request in new UploadedImage[][]
        {
            [Upload(), Garbage(garbage)],
            [new UploadedImage(0, "a.png", "image/png", 0, []), Garbage(garbage)],
            [Upload(), Garbage([])],
        })
        {
            await using var db = NewContext();
            var again = await Submitter(db).SubmitAsync(request, "line-1", key, CancellationToken.None);
            Assert.True(again.Replayed);
            Assert.Equal(first.Items.Select(i => (i.Id, i.Index)), again.Items.Select(i => (i.Id, i.Index)));
        }
        // The refused file replaced by other bytes: those would be lost.
        await using (var db = NewContext())
            Assert.True((await Submitter(db).SubmitAsync([Upload(), Garbage([9, 9, 9])], "line-1", key, CancellationToken.None)).KeyReused);
    }

    [Fact]
    public async Task Submit_RepeatWithBytesWhereTheOriginalHadAnEmptyPlaceholder_ReplaysTheFirstRequest()
    {
        // wastectl's second try carried an empty placeholder for a file locked then, and its answer was lost; the third try
        // reads the file and sends its bytes under the same key.
        var key = new IdempotencyKey("", "ingest-4567");
        var locked = TestImages.SolidPng(24, 24, new Rgb24(10, 120, 30));
        SubmissionResult first;
        await using (var db = NewContext())
            first = await Submitter(db).SubmitAsync([Upload(), new UploadedImage(1, "b.png", "image/png", 0, [])], "line-1", key, CancellationToken.None);
        Assert.Equal(ImageErrors.Empty, Assert.Single(first.Rejected).Error);

        SubmissionResult again;
        await using (var db = NewContext())
            again = await Submitter(db).SubmitAsync([Upload(), new UploadedImage(1, "b.png", "image/png", locked.Length, locked)], "line-1", key, CancellationToken.None);

        // Answered as the original recorded it (a at index 0 only): a 422 here made wastectl resend the batch for ever.
        Assert.False(again.KeyReused);
        Assert.True(again.Replayed);
        Assert.Equal(first.Items.Select(i => (i.Id, i.Index)), again.Items.Select(i => (i.Id, i.Index)));
        await using var check = NewContext();
        Assert.Single(await check.Classifications.ToListAsync());
    }

    [Fact]
    public async Task Submit_KeyOfRowsWrittenBeforeFingerprints_ReplayedForAnyCallerAsBefore()
    {
        await using (var first = NewContext()) await Submitter(first).SubmitAsync([Upload()], null, new IdempotencyKey("", "old-key"), CancellationToken.None);
        await using (var old = NewContext())
            await old.Classifications.ExecuteUpdateAsync(s => s.SetProperty(c => c.IdempotencyFingerprint, (string?)null));
        await using var db = NewContext();
        var other = TestImages.SolidPng(32, 32, new Rgb24(200, 10, 10));

        var result = await Submitter(db).SubmitAsync([new UploadedImage(0, "b.png", "image/png", other.Length, other)], "elsewhere", new IdempotencyKey("camera-b", "old-key"),
            CancellationToken.None);

        Assert.True(result.Replayed);
    }

    [Fact]
    public async Task Submit_KeyPastItsRetention_IsFreeForANewRequestBeforeTheSweep()
    {
        var key = new IdempotencyKey("", "batch-expiring");
        await using (var first = NewContext()) await Submitter(first).SubmitAsync([Upload()], "cam-a", key, CancellationToken.None);
        var later = new Later(TimeSpan.FromHours(IdempotencyOptions.DefaultRetentionHours) + TimeSpan.FromMinutes(1));
        var other = TestImages.SolidPng(32, 32, new Rgb24(200, 10, 10));
        UploadedImage[] request = [new UploadedImage(0, "b.png", "image/png", other.Length, other)];

        SubmissionResult fresh, retry;
        await using (var db = NewContext()) fresh = await Submitter(db, clock: later).SubmitAsync(request, "cam-a", key, CancellationToken.None);
        await using (var db = NewContext()) retry = await Submitter(db, clock: later).SubmitAsync(request, "cam-a", key, CancellationToken.None);

        // Other files under the expired key: a request of its own, not a 422; and the key now answers for it.
        Assert.False(fresh.KeyReused);
        Assert.False(fresh.Replayed);
        Assert.True(retry.Replayed);
        Assert.Equal(fresh.Items.Select(i => i.Id), retry.Items.Select(i => i.Id));
        // The first request's row stays, without its key.
        await using var check = NewContext();
        Assert.Equal(2, await check.Classifications.CountAsync());
        Assert.Equal(fresh.Items[0].Id, (await check.Classifications.SingleAsync(c => c.IdempotencyKey != null)).Id);
    }

    [Fact]
    public async Task Submit_KeyWithinItsRetention_StillRefusedForOtherFiles()
    {
        var key = new IdempotencyKey("", "batch-kept");
        await using (var first = NewContext()) await Submitter(first).SubmitAsync([Upload()], "cam-a", key, CancellationToken.None);
        var other = TestImages.SolidPng(32, 32, new Rgb24(200, 10, 10));
        await using var db = NewContext();

        var result = await Submitter(db, clock: new Later(TimeSpan.FromHours(IdempotencyOptions.DefaultRetentionHours) - TimeSpan.FromMinutes(1)))
            .SubmitAsync([new UploadedImage(0, "b.png", "image/png", other.Length, other)], "cam-a", key, CancellationToken.None);

        Assert.True(result.KeyReused);
    }

    [Fact]
    public async Task Submit_RetentionEndsBetweenTheRowsOfOneRequest_TheWholeRequestExpired()
    {
        // A request's rows are saved a microsecond apart; the retention ends between its first and its second.
        var key = new IdempotencyKey("", "batch-two");
        var made = new DateTime(2026, 12, 1, 8, 0, 0, DateTimeKind.Utc);
        var other = TestImages.SolidPng(16, 16, new Rgb24(1, 2, 3));
        UploadedImage[] request = [Upload(), new UploadedImage(1, "c.png", "image/png", other.Length, other)];
        SubmissionResult first;
        await using (var db = NewContext()) first = await Submitter(db, clock: new FixedClock(made)).SubmitAsync(request, null, key, CancellationToken.None);
        var retention = new IdempotencyOptions(TimeSpan.FromHours(2));

        SubmissionResult again;
        await using (var db = NewContext())
            again = await Submitter(db, clock: new FixedClock(made + retention.Retention + TimeSpan.FromTicks(5)), idempotency: retention)
                .SubmitAsync(request, null, key, CancellationToken.None);

        // Not a replay of the second file alone: a new request, both files recorded again.
        Assert.False(again.Replayed);
        Assert.Equal(2, again.Items.Count);
        Assert.Empty(again.Items.Select(i => i.Id).Intersect(first.Items.Select(i => i.Id)));
    }

    [Fact]
    public async Task Sweep_ClearsTheKeysOfExpiredRequestsWholeInBatches_AndOnlyThose()
    {
        var made = new DateTime(2026, 12, 1, 8, 0, 0, DateTimeKind.Utc);
        var other = TestImages.SolidPng(16, 16, new Rgb24(1, 2, 3));
        async Task SubmitAsync(string key, DateTime at, params UploadedImage[] files)
        {
            await using var db = NewContext();
            await Submitter(db, clock: new FixedClock(at)).SubmitAsync(files, null, new IdempotencyKey("", key), CancellationToken.None);
        }
        await SubmitAsync("older", made, Upload());
        await SubmitAsync("old-two", made.AddHours(1), Upload(), new UploadedImage(1, "c.png", "image/png", other.Length, other));
        await SubmitAsync("new", made.AddHours(1).AddMinutes(1), Upload());
        await using var services = new ServiceCollection().AddScoped(_ => NewContext()).BuildServiceProvider();
        // Past the retention: "older", and the first of "old-two"'s rows (its second is a microsecond younger).
        var retention = new IdempotencyOptions(TimeSpan.FromHours(24));
        var sweeper = new IdempotencySweeper(services.GetRequiredService<IServiceScopeFactory>(), retention,
            new FixedClock(made.AddHours(1) + retention.Retention + TimeSpan.FromTicks(5)), NullLogger<IdempotencySweeper>.Instance)
        { ClassificationBatch = 1 };

        Assert.Equal(3, await sweeper.SweepAsync(CancellationToken.None));

        await using var check = NewContext();
        var keyed = await check.Classifications.Where(c => c.IdempotencyKey != null).ToListAsync();
        Assert.Equal("new", Assert.Single(keyed).IdempotencyKey);
        Assert.Equal(4, await check.Classifications.CountAsync());
        Assert.Equal(0, await sweeper.SweepAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Submit_ClientGoneOnceTheImageIsStored_ImageAndClassificationRecordedAllTheSame()
    {
        // A load test stopped with Ctrl+C: the request's token is cancelled between the store and the save.
        using var client = new CancellationTokenSource();
        var store = new MemoryObjectStore { AfterPut = _ => client.Cancel() };
        await using var db = NewContext();

        // The send, after the save, may still give up with the request: the re-publisher sends a recorded row.
        try
        {
            await Submitter(db, store).SubmitAsync([Upload()], source: "loadtest-1", idempotencyKey: null, client.Token);
        }
        catch (OperationCanceledException)
        {
        }

        // The object is named by a row, and its classification carries the source that wastectl loadtest --cleanup finds a run by.
        await using var check = NewContext();
        var image = await check.Images.SingleAsync();
        Assert.Equal(image.ObjectKey, Assert.Single(store.Keys));
        Assert.Equal(image.Id, (await check.Classifications.SingleAsync(c => c.Source == "loadtest-1")).ImageId);
    }

    [Fact]
    public async Task Submit_ClientGoneBeforeTheStore_NothingStored()
    {
        var store = new MemoryObjectStore();
        await using var db = NewContext();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            Submitter(db, store).SubmitAsync([Upload()], source: null, idempotencyKey: null, new CancellationToken(canceled: true)));

        Assert.Empty(store.Keys);
    }

    [Fact]
    public async Task Take_ClientGoneOnceTheImageIsStored_ImageRowSavedAllTheSame()
    {
        // As a training upload or a direct upload's commit takes its files: the intake saves the image rows itself.
        using var client = new CancellationTokenSource();
        var store = new MemoryObjectStore { AfterPut = _ => client.Cancel() };
        await using var db = NewContext();

        var (accepted, _) = await new ImageIntake(db, store, new UploadOptions(), _seen, TimeProvider.System).TakeAsync([Upload()], client.Token);

        await using var check = NewContext();
        var image = await check.Images.SingleAsync();
        Assert.Equal(image.Id, Assert.Single(accepted).Image.Id);
        Assert.Equal(image.ObjectKey, Assert.Single(store.Keys));
    }

    private ClassificationSubmitter Submitter(ClassifierDbContext db, MemoryObjectStore? store = null, TimeProvider? clock = null, IdempotencyOptions? idempotency = null) => new(
        db,
        new ImageIntake(db, store ?? new MemoryObjectStore(), new UploadOptions(), _seen, TimeProvider.System),
        // The broker is away: the rows stay recorded for the re-publisher, as the submitter promises.
        new ClassifyCommandSender(db, new RefusingSendEndpoints(), new MessagingOptions(), TimeProvider.System),
        new DuplicateFrames(db, new IngestionOptions(), TimeProvider.System),
        _waiter,
        clock ?? TimeProvider.System,
        NullLogger<ClassificationSubmitter>.Instance,
        idempotency);

    private UploadedImage Upload() => new(0, "a.png", "image/png", _png.Length, _png);

    private static string Hash(byte[] content) => Convert.ToHexStringLower(SHA256.HashData(content));

    private ClassifierDbContext NewContext(params IInterceptor[] interceptors) =>
        new(new DbContextOptionsBuilder<ClassifierDbContext>().UseSqlite(_connection).UseSnakeCaseNamingConvention().AddInterceptors(interceptors).Options);

    public void Dispose() => _connection.Dispose();

    /// <summary>The system clock moved on by <paramref name="by"/>.</summary>
    private sealed class Later(TimeSpan by) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + by;
    }

    private sealed class FixedClock(DateTime now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => new(now);
    }

    private sealed class SaveCounter : SaveChangesInterceptor
    {
        public int Count { get; private set; }

        public int Failed { get; private set; }

        public override Task SaveChangesFailedAsync(DbContextErrorEventData eventData, CancellationToken cancellationToken = default)
        {
            Failed++;
            return Task.CompletedTask;
        }

        public override ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
        {
            Count++;
            return ValueTask.FromResult(result);
        }
    }

    private sealed class CommandLog : DbCommandInterceptor
    {
        public List<string> Texts { get; } = [];

        public override ValueTask<InterceptionResult<System.Data.Common.DbDataReader>> ReaderExecutingAsync(System.Data.Common.DbCommand command, CommandEventData eventData,
            InterceptionResult<System.Data.Common.DbDataReader> result, CancellationToken cancellationToken = default)
        {
            Texts.Add(command.CommandText);
            return ValueTask.FromResult(result);
        }
    }

    /// <summary>The first save commits, then fails as a retried INSERT of the same rows does.</summary>
    private sealed class AnswerLostAfterCommit : SaveChangesInterceptor
    {
        private bool _failed;

        public override ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
        {
            if (_failed) return ValueTask.FromResult(result);
            _failed = true;
            throw new DbUpdateException("An error occurred while saving the entity changes.",
                new SqliteException("SQLite Error 19: 'UNIQUE constraint failed: classifications.id'.", 19, 1555));
        }
    }

    /// <summary>Just before the submission's first save, another request records the same bytes.</summary>
    private sealed class ConcurrentUploadFirst(ClassificationSubmitterTests test) : SaveChangesInterceptor
    {
        public Guid? ImageId { get; private set; }

        public override async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result,
            CancellationToken cancellationToken = default)
        {
            if (ImageId is not null) return result;
            ImageId = Guid.NewGuid();
            var hash = Hash(test._png);
            await using var other = test.NewContext();
            other.Images.Add(new StoredImage
            {
                Id = ImageId.Value,
                ObjectKey = ImageIntake.ObjectKeyFor(hash),
                ContentHash = hash,
                SizeBytes = test._png.Length,
                Format = "png",
                CreatedAt = DateTime.UtcNow,
            });
            await other.SaveChangesAsync(cancellationToken);
            return result;
        }
    }
}
