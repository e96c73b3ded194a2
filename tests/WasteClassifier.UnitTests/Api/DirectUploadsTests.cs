using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Api.Ingestion;
using WasteClassifier.Api.Security;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Api;

/// <summary>Committing direct uploads: what one commit may hold in memory, and objects rewritten or committed meanwhile.</summary>
public sealed class DirectUploadsTests : IDisposable
{
    private readonly InMemoryDatabase _database = new();
    private readonly MemoryObjectStore _store = new();
    private readonly SeenContentHashes _seen = new();
    private readonly UploadOptions _limits = new();

    [Fact]
    public async Task Commit_UploadsOverTheRequestLimit_RefusedWholeBeforeAnyRead()
    {
        var first = TestImages.SolidPng(32, 32, new Rgb24(200, 10, 10));
        var second = TestImages.SolidPng(32, 32, new Rgb24(10, 10, 200));
        _limits.MaxRequestBytes = first.Length + second.Length - 1;
        Guid[] ids = [await UploadAsync(first), await UploadAsync(second)];

        var outcome = await CommitAsync(ids);

        Assert.Equal(DirectUploads.CommitTooLarge, outcome.TooLarge?.Error);
        Assert.Contains(_limits.MaxRequestBytes.ToString("N0"), outcome.TooLarge!.Message);
        Assert.Equal(0, _store.Reads);
        await using (var check = _database.NewContext())
        {
            Assert.All(await check.DirectUploads.ToListAsync(), u => Assert.Equal(DirectUploadStatus.Pending, u.Status));
            Assert.Empty(await check.Classifications.ToListAsync());
        }
        // Nothing was done: the same uploads, committed in smaller groups, go through.
        foreach (var id in ids) Assert.Equal(DirectUploads.Accepted, Assert.Single((await CommitAsync([id])).Items).Status);
    }

    [Fact]
    public async Task Commit_ObjectRewrittenLargerAfterItsSizeCheck_RefusedAsChangedAndCommittableAgain()
    {
        var checkedBytes = TestImages.SolidPng(16, 16, new Rgb24(10, 200, 10));
        var larger = TestImages.SplitPng(256, 256, new Rgb24(10, 200, 10), new Rgb24(200, 10, 10));
        Assert.True(larger.Length > checkedBytes.Length);
        var id = await UploadAsync(checkedBytes);
        var key = DirectUploads.StagingKeyFor(id);
        // The presigned URL is still valid: the client PUTs again between the commit's size check and its read.
        _store.BeforeRead = async k =>
        {
            if (k != key) return;
            _store.BeforeRead = null;
            await _store.PutAsync(key, larger, "image/png", CancellationToken.None);
        };

        var refused = Assert.Single((await CommitAsync([id])).Items);

        Assert.Equal(DirectUploads.Refused, refused.Status);
        Assert.Equal("upload_changed", refused.Error);
        await using (var check = _database.NewContext()) Assert.Empty(await check.Classifications.ToListAsync());
        // Still pending: committed again, the object is checked at its new size.
        var accepted = Assert.Single((await CommitAsync([id])).Items);
        Assert.Equal(DirectUploads.Accepted, accepted.Status);
        await using (var check = _database.NewContext())
            Assert.Equal(larger.Length, (await check.Images.SingleAsync()).SizeBytes);
    }

    [Fact]
    public async Task Commit_SameUploadCommittedConcurrentlyDuringItsSizeCheck_AnswersWithThatClassification()
    {
        var id = await UploadAsync(TestImages.SolidPng(32, 32, new Rgb24(10, 200, 10)));
        var key = DirectUploads.StagingKeyFor(id);
        DirectUploads.CommitItem? other = null;
        // This commit has read the row as pending; the other one commits the upload and deletes its staged object.
        _store.BeforeSize = async k =>
        {
            if (k != key) return;
            _store.BeforeSize = null;
            other = Assert.Single((await CommitAsync([id])).Items);
        };

        var item = Assert.Single((await CommitAsync([id])).Items);

        Assert.Equal(DirectUploads.Accepted, other?.Status);
        // It was a 400 not_uploaded ("PUT the bytes first"): a client doing so would have the image classified twice.
        Assert.Equal(DirectUploads.Accepted, item.Status);
        Assert.Equal(other!.ClassificationId, item.ClassificationId);
        await using var check = _database.NewContext();
        Assert.Single(await check.Classifications.ToListAsync());
    }

    [Fact]
    public async Task Commit_WhoseAnswerWasLost_ItsRowsSentNowAndAnswered()
    {
        var id = await UploadAsync(TestImages.SolidPng(32, 32, new Rgb24(200, 200, 10)));

        // As PostgreSQL's retrying strategy meets it: the commit went through, its answer did not, and the retried save
        // failed on the rows' own keys.
        DirectUploads.CommitOutcome outcome;
        await using (var db = _database.NewContext(new AnswerLostAfterCommit()))
            outcome = await Uploads(db).CommitAsync([id], source: null, duplicateWindowSeconds: null, CancellationToken.None);

        var item = Assert.Single(outcome.Items);
        Assert.Equal(DirectUploads.Accepted, item.Status);
        await using var check = _database.NewContext();
        var row = await check.Classifications.SingleAsync();
        Assert.Equal(row.Id, item.ClassificationId);
        Assert.Equal(DirectUploadStatus.Committed, (await check.DirectUploads.SingleAsync()).Status);
        // The send was tried (the broker here refuses it, which clears the stamp for the re-publisher's quick rule); before,
        // the row stayed stamped as sent but never was, until the rule for lost messages sent it minutes later.
        Assert.Null(row.PublishedAt);
    }

    [Fact]
    public async Task Commit_RetriesRunOutAfterTheCommitWentThrough_ItsRowsSentNowAndAnswered()
    {
        var id = await UploadAsync(TestImages.SolidPng(32, 32, new Rgb24(120, 200, 10)));

        // PostgreSQL's retrying strategy gave up (the database away for its retries) after a first try whose COMMIT landed:
        // a 503 "nothing was accepted", and the row, stamped as sent, waited minutes for the re-publisher.
        var lost = new RetriesRunOut<Classification>(afterCommit: true);
        DirectUploads.CommitOutcome outcome;
        await using (var db = _database.NewContext(lost))
            outcome = await Uploads(db).CommitAsync([id], source: null, duplicateWindowSeconds: null, CancellationToken.None);

        Assert.True(lost.Fired);
        var item = Assert.Single(outcome.Items);
        Assert.Equal(DirectUploads.Accepted, item.Status);
        await using var check = _database.NewContext();
        var row = await check.Classifications.SingleAsync();
        Assert.Equal(row.Id, item.ClassificationId);
        Assert.Equal(DirectUploadStatus.Committed, (await check.DirectUploads.SingleAsync()).Status);
        // The send was tried (the broker here refuses it, which clears the stamp for the re-publisher's quick rule).
        Assert.Null(row.PublishedAt);
    }

    [Theory]
    [InlineData("size", "io")]
    [InlineData("read", "io")]
    [InlineData("read", "access")]
    public async Task Commit_StoreFailsToReadTheObject_ServiceUnavailableAndNothingDone(string step, string error)
    {
        var id = await UploadAsync(TestImages.SolidPng(32, 32, new Rgb24(10, 10, 10)));
        // What the folder store meets on a failing disk, or a file it may not open.
        Exception failure = error == "io" ? new IOException("Input/output error") : new UnauthorizedAccessException("Access to the path is denied.");
        Func<string, Task> fail = _ => Task.FromException(failure);
        if (step == "size") _store.BeforeSize = fail;
        else _store.BeforeRead = fail;

        var thrown = await Record.ExceptionAsync(() => CommitAsync([id]));

        // It was a 500 internal_error, which a client does not retry; the store's outage is a 503 with Retry-After.
        Assert.NotNull(thrown);
        Assert.True(DependencyFailures.IsUnavailable(thrown), thrown.ToString());
        await using var check = _database.NewContext();
        Assert.Equal(DirectUploadStatus.Pending, (await check.DirectUploads.SingleAsync()).Status);
        Assert.Empty(await check.Classifications.ToListAsync());
    }

    [Fact]
    public async Task Commit_StoreHangsDeletingTheStagedObject_StillAccepted()
    {
        var id = await UploadAsync(TestImages.SolidPng(32, 32, new Rgb24(10, 120, 200)));
        // What a store that hangs throws once its client's timeout passes; the commit's own token is not cancelled.
        _store.BeforeDelete = _ => Task.FromException(new TaskCanceledException("The request was canceled due to the configured HttpClient.Timeout"));

        var item = Assert.Single((await CommitAsync([id])).Items);

        // The rows were saved and the message sent: it threw, a 500 for a committed upload.
        Assert.Equal(DirectUploads.Accepted, item.Status);
        await using var check = _database.NewContext();
        Assert.Equal(item.ClassificationId, (await check.Classifications.SingleAsync()).Id);
        Assert.Equal(DirectUploadStatus.Committed, (await check.DirectUploads.SingleAsync()).Status);
    }

    /// <summary>The first save of classifications commits, then fails as a retried INSERT of the same rows does.</summary>
    private sealed class AnswerLostAfterCommit : SaveChangesInterceptor
    {
        private bool _saving;
        private bool _failed;

        public override ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result,
            CancellationToken cancellationToken = default)
        {
            // Not the intake's own save of the image rows, which comes first.
            _saving = eventData.Context!.ChangeTracker.Entries<Classification>().Any(e => e.State == EntityState.Added);
            return ValueTask.FromResult(result);
        }

        public override ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
        {
            if (_failed || !_saving) return ValueTask.FromResult(result);
            _failed = true;
            throw new DbUpdateException("An error occurred while saving the entity changes.",
                new Microsoft.Data.Sqlite.SqliteException("SQLite Error 19: 'UNIQUE constraint failed: classifications.id'.", 19, 1555));
        }
    }

    private async Task<Guid> UploadAsync(byte[] content)
    {
        await using var db = _database.NewContext();
        var created = await Uploads(db).CreateAsync([new DirectUploads.FileRequest("a.png", "image/png", null)], "line-1", CancellationToken.None);
        var id = created[0].Upload.Id;
        await _store.PutAsync(DirectUploads.StagingKeyFor(id), content, "image/png", CancellationToken.None);
        return id;
    }

    private async Task<DirectUploads.CommitOutcome> CommitAsync(IReadOnlyList<Guid> ids)
    {
        await using var db = _database.NewContext();
        return await Uploads(db).CommitAsync(ids, source: null, duplicateWindowSeconds: null, CancellationToken.None);
    }

    private DirectUploads Uploads(ClassifierDbContext db) => new(
        db,
        _store,
        new ImageIntake(db, _store, _limits, _seen, TimeProvider.System),
        // The broker is away: the rows stay recorded for the re-publisher.
        new ClassifyCommandSender(db, new RefusingSendEndpoints(), new MessagingOptions(), TimeProvider.System),
        new DuplicateFrames(db, new IngestionOptions(), TimeProvider.System),
        _limits,
        new IngestionOptions(),
        TimeProvider.System,
        NullLogger<DirectUploads>.Instance);

    public void Dispose() => _database.Dispose();
}
