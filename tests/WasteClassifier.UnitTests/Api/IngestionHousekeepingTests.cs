using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Api.Ingestion;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Api;

/// <summary>Removing direct uploads' staged objects while the object store is away.</summary>
public sealed class IngestionHousekeepingTests : IDisposable
{
    private readonly InMemoryDatabase _database = new();
    private readonly FlakyDeletes _store = new();
    private readonly MovableClock _clock = new();

    [Fact]
    public async Task ExpireUploads_StoreFailingDeletes_ObjectsKeptDueAndDeletedOnceItIsBack()
    {
        var committed = await AddAsync(DirectUploadStatus.Committed, cleanupDue: true);
        var pending = await AddAsync(DirectUploadStatus.Pending, cleanupDue: false);
        var housekeeping = Housekeeping();
        _store.Failure = new HttpRequestException("connection refused");

        await housekeeping.ExpireUploadsAsync(CancellationToken.None);

        // Both objects are still there, and both uploads still due for clean-up: cleared, nothing would ever delete them.
        Assert.Equal(2, _store.Objects.Count);
        await using (var check = _database.NewContext())
        {
            Assert.NotNull((await check.DirectUploads.SingleAsync(u => u.Id == committed)).CleanupAt);
            var expired = await check.DirectUploads.SingleAsync(u => u.Id == pending);
            Assert.Equal((DirectUploadStatus.Expired, true), (expired.Status, expired.CleanupAt is not null));
        }

        // The store is back; a later round (past the minute a failed delete waits) deletes them, and then nothing is due.
        _store.Failure = null;
        _clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(2, await housekeeping.ExpireUploadsAsync(CancellationToken.None));
        Assert.Empty(_store.Objects);
        await using (var check = _database.NewContext())
            Assert.All(await check.DirectUploads.ToListAsync(), u => Assert.Null(u.CleanupAt));
    }

    [Fact]
    public async Task ExpireUploads_ObjectTheStoreAnswersNotFound_CountsAsDeleted()
    {
        var committed = await AddAsync(DirectUploadStatus.Committed, cleanupDue: true);
        _store.Failure = new HttpRequestException("no such key", null, HttpStatusCode.NotFound);

        Assert.Equal(1, await Housekeeping().ExpireUploadsAsync(CancellationToken.None));

        await using var check = _database.NewContext();
        Assert.Null((await check.DirectUploads.SingleAsync(u => u.Id == committed)).CleanupAt);
    }

    [Fact]
    public async Task ExpireUploads_ObjectTheStoreRefusesToDelete_TriedAgainLessAndLessOften()
    {
        await AddAsync(DirectUploadStatus.Committed, cleanupDue: true);
        var housekeeping = Housekeeping();
        _store.Failure = new HttpRequestException("access denied", null, HttpStatusCode.Forbidden);

        // Failed deletes 1 and 2, each tried once its wait (1, then 2 minutes) has passed.
        await housekeeping.ExpireUploadsAsync(CancellationToken.None);
        _clock.Advance(TimeSpan.FromMinutes(1.5));
        await housekeeping.ExpireUploadsAsync(CancellationToken.None);
        Assert.Equal(2, _store.Deletes);

        // Not again a minute later, as before: only once the 2 minutes are over.
        _clock.Advance(TimeSpan.FromMinutes(1.5));
        await housekeeping.ExpireUploadsAsync(CancellationToken.None);
        Assert.Equal(2, _store.Deletes);
        _clock.Advance(TimeSpan.FromMinutes(1));
        await housekeeping.ExpireUploadsAsync(CancellationToken.None);
        Assert.Equal(3, _store.Deletes);
        await using var check = _database.NewContext();
        Assert.Equal(3, (await check.DirectUploads.SingleAsync()).CleanupAttempts);
    }

    [Fact]
    public async Task ExpireUploads_ObjectTheStoreNeverDeletes_GivenUpAfterTheLastAttemptAndTheRowKept()
    {
        var committed = await AddAsync(DirectUploadStatus.Committed, cleanupDue: true);
        var housekeeping = Housekeeping();
        _store.Failure = new HttpRequestException("access denied", null, HttpStatusCode.Forbidden);

        for (var round = 0; round < IngestionHousekeeping.MaxCleanupAttempts + 3; round++)
        {
            await housekeeping.ExpireUploadsAsync(CancellationToken.None);
            _clock.Advance(TimeSpan.FromHours(7));
        }

        // It was asked again every minute, for ever.
        Assert.Equal(IngestionHousekeeping.MaxCleanupAttempts, _store.Deletes);
        Assert.Single(_store.Objects);
        await using var check = _database.NewContext();
        var upload = await check.DirectUploads.SingleAsync(u => u.Id == committed);
        Assert.Equal((DirectUploadStatus.Committed, (DateTime?)null, IngestionHousekeeping.MaxCleanupAttempts),
            (upload.Status, upload.CleanupAt, upload.CleanupAttempts));
    }

    [Fact]
    public async Task ExpireUploads_StoreHangsOnDeletes_EachCountedAsAFailedAttemptAndTheRoundFinished()
    {
        var committed = await AddAsync(DirectUploadStatus.Committed, cleanupDue: true);
        var refused = await AddAsync(DirectUploadStatus.Refused, cleanupDue: true);
        var pending = await AddAsync(DirectUploadStatus.Pending, cleanupDue: false);
        var housekeeping = Housekeeping();
        // What a store that hangs throws once its client's timeout passes; housekeeping's own token is not cancelled.
        _store.Failure = new TaskCanceledException("The request was canceled due to the configured HttpClient.Timeout");

        await housekeeping.ExpireUploadsAsync(CancellationToken.None);

        // The round threw before saving: nothing counted, the same row asked again every round, the pending one never expired.
        Assert.Equal(3, _store.Deletes);
        await using (var check = _database.NewContext())
        {
            var uploads = await check.DirectUploads.ToDictionaryAsync(u => u.Id);
            Assert.All(uploads.Values, u => Assert.Equal(1, u.CleanupAttempts));
            Assert.Equal(DirectUploadStatus.Expired, uploads[pending].Status);
            Assert.All(uploads.Values, u => Assert.NotNull(u.CleanupAt));
            Assert.True(uploads[committed].CleanupAt > _clock.GetUtcNow().UtcDateTime - TimeSpan.FromMinutes(1));
            Assert.True(uploads[refused].CleanupAt > _clock.GetUtcNow().UtcDateTime - TimeSpan.FromMinutes(1));
        }

        // Backed off: not asked again in the next round.
        await housekeeping.ExpireUploadsAsync(CancellationToken.None);
        Assert.Equal(3, _store.Deletes);
    }

    [Theory]
    [InlineData("503")]
    [InlineData("connection_refused")]
    [InlineData("timeout")]
    public async Task ExpireUploads_StoreDownLongerThanTheAttemptsLast_NeverGivenUpButAskedEverySixHours(string outage)
    {
        var committed = await AddAsync(DirectUploadStatus.Committed, cleanupDue: true);
        var housekeeping = Housekeeping();
        _store.Failure = outage switch
        {
            "503" => new ObjectStoreResponseException("object store DELETE answered 503 SlowDown", HttpStatusCode.ServiceUnavailable, "SlowDown"),
            "connection_refused" => new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused"),
            _ => new TimeoutException("object store DELETE did not finish within 30 s"),
        };

        // Past the 12 attempts (about 20 hours): a weekend's outage, say.
        var rounds = IngestionHousekeeping.MaxCleanupAttempts + 3;
        for (var round = 0; round < rounds; round++)
        {
            await housekeeping.ExpireUploadsAsync(CancellationToken.None);
            _clock.Advance(TimeSpan.FromHours(7));
        }

        // Given up after the 12th, as for an object the store refuses for good; every object of the outage was left behind.
        Assert.Equal(rounds, _store.Deletes);
        await using (var check = _database.NewContext())
        {
            var upload = await check.DirectUploads.SingleAsync(u => u.Id == committed);
            // Counted up to the refusals in a row that giving up needs, no further.
            Assert.Equal(IngestionHousekeeping.MaxCleanupAttempts - IngestionHousekeeping.RefusalsToGiveUp, upload.CleanupAttempts);
            Assert.NotNull(upload.CleanupAt);
            // Due again within 6 hours of the last failed delete (a round's grace included), not later.
            Assert.True(upload.CleanupAt <= _clock.GetUtcNow().UtcDateTime - TimeSpan.FromHours(7) + TimeSpan.FromHours(6) - TimeSpan.FromMinutes(1));
        }

        // The store is back: the object is deleted.
        _store.Failure = null;
        Assert.Equal(1, await housekeeping.ExpireUploadsAsync(CancellationToken.None));
        Assert.Empty(_store.Objects);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(11)]
    public async Task ExpireUploads_OutageThenRefusals_GivenUpOnlyAfterSeveralRefusalsInARow(int refusedBeforeTheOutage)
    {
        var committed = await AddAsync(DirectUploadStatus.Committed, cleanupDue: true);
        var housekeeping = Housekeeping();
        var refused = new HttpRequestException("access denied", null, HttpStatusCode.Forbidden);
        var down = new ObjectStoreResponseException("object store DELETE answered 503 SlowDown", HttpStatusCode.ServiceUnavailable, "SlowDown");
        async Task<DateTime?> RoundAsync(Exception failure)
        {
            _store.Failure = failure;
            await housekeeping.ExpireUploadsAsync(CancellationToken.None);
            _clock.Advance(TimeSpan.FromHours(7));
            await using var check = _database.NewContext();
            return (await check.DirectUploads.SingleAsync(u => u.Id == committed)).CleanupAt;
        }

        // Refused, then the store down long enough to reach the limit (an outage), then refusing again (its policy
        // changed as it came back): the first refusal after 11 failed deletes gave up at once.
        for (var i = 0; i < refusedBeforeTheOutage; i++) await RoundAsync(refused);
        for (var i = refusedBeforeTheOutage; i < IngestionHousekeeping.MaxCleanupAttempts; i++) Assert.NotNull(await RoundAsync(down));
        for (var i = 1; i < IngestionHousekeeping.RefusalsToGiveUp; i++) Assert.NotNull(await RoundAsync(refused));

        Assert.Null(await RoundAsync(refused));
        Assert.Single(_store.Objects);
    }

    [Fact]
    public async Task ExpireUploads_ExpiringUploadCommittedMeanwhile_TheClosedUploadsFailedDeleteStillCounted()
    {
        var committed = await AddAsync(DirectUploadStatus.Committed, cleanupDue: true);
        var pending = await AddAsync(DirectUploadStatus.Pending, cleanupDue: false);
        string committedKey, pendingKey;
        await using (var db = _database.NewContext())
        {
            committedKey = (await db.DirectUploads.SingleAsync(u => u.Id == committed)).ObjectKey;
            pendingKey = (await db.DirectUploads.SingleAsync(u => u.Id == pending)).ObjectKey;
        }
        _store.BeforeDelete = async key =>
        {
            // A commit (its answer late, a PUT just before the URL expired) takes the pending upload while it is expired.
            if (key == pendingKey)
            {
                await using var db = _database.NewContext();
                (await db.DirectUploads.SingleAsync(u => u.Id == pending)).Status = DirectUploadStatus.Committed;
                await db.SaveChangesAsync();
            }
            if (key == committedKey) throw new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused");
        };

        await Housekeeping().ExpireUploadsAsync(CancellationToken.None);

        // Saved with the expiry, the conflict rolled the attempt and its wait back: the row was asked again every round.
        await using var check = _database.NewContext();
        var upload = await check.DirectUploads.SingleAsync(u => u.Id == committed);
        Assert.Equal(1, upload.CleanupAttempts);
        Assert.True(upload.CleanupAt > _clock.GetUtcNow().UtcDateTime - TimeSpan.FromMinutes(1));
        Assert.Equal(DirectUploadStatus.Committed, (await check.DirectUploads.SingleAsync(u => u.Id == pending)).Status);
    }

    [Fact]
    public void RetryDelay_DoublesFromAMinuteAndIsCapped()
    {
        Assert.Equal(TimeSpan.FromMinutes(1), IngestionHousekeeping.RetryDelay(1));
        Assert.Equal(TimeSpan.FromMinutes(8), IngestionHousekeeping.RetryDelay(4));
        Assert.Equal(TimeSpan.FromHours(6), IngestionHousekeeping.RetryDelay(20));
    }

    private IngestionHousekeeping Housekeeping()
    {
        var services = new ServiceCollection()
            .AddScoped(_ => _database.NewContext())
            .AddSingleton<IObjectStore>(_store)
            .BuildServiceProvider();
        return new IngestionHousekeeping(services.GetRequiredService<IServiceScopeFactory>(), new IngestionOptions(), _clock, NullLogger<IngestionHousekeeping>.Instance);
    }

    /// <summary>An upload whose URL expired an hour ago, with its staged object in the store.</summary>
    private async Task<Guid> AddAsync(string status, bool cleanupDue)
    {
        var now = _clock.GetUtcNow().UtcDateTime;
        var upload = new DirectUpload
        {
            Id = Guid.NewGuid(),
            ObjectKey = DirectUploads.StagingKeyFor(Guid.NewGuid()),
            Status = status,
            CreatedAt = now.AddHours(-2),
            ExpiresAt = now.AddHours(-1),
            CleanupAt = cleanupDue ? now.AddHours(-1) : null,
        };
        await using var db = _database.NewContext();
        db.DirectUploads.Add(upload);
        await db.SaveChangesAsync();
        _store.Objects[upload.ObjectKey] = [1, 2, 3];
        return upload.Id;
    }

    public void Dispose() => _database.Dispose();

    private sealed class MovableClock : TimeProvider
    {
        private TimeSpan _by;

        public void Advance(TimeSpan by) => _by += by;

        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + _by;
    }

    /// <summary>Objects in memory, whose deletes throw <see cref="Failure"/> while it is set.</summary>
    private sealed class FlakyDeletes : IObjectStore
    {
        public Dictionary<string, byte[]> Objects { get; } = [];

        public Exception? Failure { get; set; }

        public int Deletes { get; private set; }

        /// <summary>Runs before a delete, given its key (which it may fail by throwing).</summary>
        public Func<string, Task>? BeforeDelete { get; set; }

        public async Task DeleteAsync(string key, CancellationToken cancellationToken)
        {
            Deletes++;
            if (BeforeDelete is { } before) await before(key);
            if (Failure is not null) throw Failure;
            Objects.Remove(key);
        }

        public Task EnsureReadyAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken)
        {
            Objects[key] = content.ToArray();
            return Task.CompletedTask;
        }

        public Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken) => Task.FromResult(Objects.GetValueOrDefault(key));

        public Task<byte[]?> GetAsync(string key, long maxBytes, CancellationToken cancellationToken) => GetAsync(key, cancellationToken);

        public Task CheckAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
