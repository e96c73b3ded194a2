using System.Data.Common;
using MassTransit;
using MassTransit.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;

using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Api;

/// <summary>New rows are saved already stamped as sent; a failed send must hand them back to the re-publisher.</summary>
public sealed class ClassifyCommandSenderTests : IDisposable
{
    private readonly InMemoryDatabase _database = new();


    [Fact]
    public async Task SendStamped_BrokerRefuses_StampsClearedAndTheErrorRaised()
    {
        var rows = await AddStampedRowsAsync(3);
        var sender = new ClassifyCommandSender(Db, new RefusingSendEndpoints(), new MessagingOptions(), TimeProvider.System);

        await Assert.ThrowsAsync<InvalidOperationException>(() => sender.SendStampedAsync(rows, images: null, CancellationToken.None));

        Db.ChangeTracker.Clear();
        var stored = await Db.Classifications.AsNoTracking().ToListAsync();
        Assert.Equal(3, stored.Count);
        Assert.All(stored, row => Assert.Null(row.PublishedAt));
    }

    [Fact]
    public async Task SendStamped_RequestCancelled_StampsStillCleared()
    {
        var rows = await AddStampedRowsAsync(2);
        var sender = new ClassifyCommandSender(Db, new RefusingSendEndpoints(new OperationCanceledException()), new MessagingOptions(), TimeProvider.System);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAsync<OperationCanceledException>(() => sender.SendStampedAsync(rows, images: null, cancelled.Token));

        Db.ChangeTracker.Clear();
        Assert.All(await Db.Classifications.AsNoTracking().ToListAsync(), row => Assert.Null(row.PublishedAt));
    }

    [Fact]
    public async Task ClaimAndSend_BrokerRefuses_RowsGetBackTheStampTheyWereReadWith()
    {
        // A resend claims its rows by stamping them before the send; a failed send leaves them as they were, still due.
        var rows = await AddStampedRowsAsync(2);
        var read = rows[0].PublishedAt;
        var sender = new ClassifyCommandSender(Db, new RefusingSendEndpoints(), new MessagingOptions(), new FixedClock(read!.Value.AddMinutes(15)));

        await Assert.ThrowsAsync<InvalidOperationException>(() => sender.ClaimAndSendAsync(rows, images: null, CancellationToken.None));

        Db.ChangeTracker.Clear();
        Assert.All(await Db.Classifications.AsNoTracking().ToListAsync(), row => Assert.Equal(read, row.PublishedAt));
    }

    [Fact]
    public async Task ClaimAndSend_CancelledAsTheClaimCommits_RowsGetBackTheStampTheyWereReadWith()
    {
        // The claim committed, then the caller's token ended the call before the send: left stamped, the rows looked sent
        // and waited StuckAfterSeconds.
        var rows = await AddStampedRowsAsync(2);
        var read = rows[0].PublishedAt;
        await using var db = _database.NewContext(new CancelledAfterFirstCommit());
        var tracked = await db.Classifications.Include(c => c.Image).ToListAsync();
        var sender = new ClassifyCommandSender(db, new RefusingSendEndpoints(), new MessagingOptions(), new FixedClock(read!.Value.AddMinutes(15)));

        await Assert.ThrowsAsync<OperationCanceledException>(() => sender.ClaimAndSendAsync(tracked, images: null, CancellationToken.None));

        await using var check = _database.NewContext();
        Assert.All(await check.Classifications.AsNoTracking().ToListAsync(), row => Assert.Equal(read, row.PublishedAt));
    }

    [Fact]
    public async Task ClaimAndSend_BrokerRefusesAndTheGiveBackFails_TheSendsErrorRaised()
    {
        // The send's error is the one the caller acts on (the load tester waits after a TimeoutException); the give-back's
        // replaced it.
        var rows = await AddStampedRowsAsync(2);
        await using var db = _database.NewContext(new DatabaseGoneAfterFirstCommit());
        var tracked = await db.Classifications.Include(c => c.Image).ToListAsync();
        var sender = new ClassifyCommandSender(db, new RefusingSendEndpoints(new TimeoutException("broker slow")), new MessagingOptions(), TimeProvider.System);

        await Assert.ThrowsAsync<TimeoutException>(() => sender.ClaimAndSendAsync(tracked, images: null, CancellationToken.None));
    }

    [Fact]
    public async Task Send_SmallImagesAtHand_TravelInTheMessage_LargeOnesAndUnknownOnesDoNot()
    {
        var rows = await AddStampedRowsAsync(3);
        byte[] small = [1, 2, 3, 4], large = new byte[17];
        var images = new Dictionary<Guid, OutgoingImage>
        {
            [rows[0].ImageId] = new(rows[0].Image!.ObjectKey, small),
            [rows[1].ImageId] = new(rows[1].Image!.ObjectKey, large),
        };
        await using var provider = new ServiceCollection().AddPatientTestHarness().BuildServiceProvider(true);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        var sender = new ClassifyCommandSender(Db, harness.Bus, new MessagingOptions { InlineImageBytes = 16 }, TimeProvider.System);

        await sender.ClaimAndSendAsync(rows, images, CancellationToken.None);

        var sent = harness.Sent.Select<ClassifyImage>().Select(m => m.Context.Message).ToDictionary(m => m.ClassificationId);
        Assert.Equal(small, sent[rows[0].Id].ImageBytes);
        Assert.Null(sent[rows[1].Id].ImageBytes);
        Assert.Null(sent[rows[2].Id].ImageBytes);
        Assert.Equal(rows.Select(r => r.Image!.ObjectKey), rows.Select(r => sent[r.Id].ObjectKey));
    }

    [Fact]
    public async Task Send_InliningTurnedOff_NoMessageCarriesBytes()
    {
        var rows = await AddStampedRowsAsync(1);
        await using var provider = new ServiceCollection().AddPatientTestHarness().BuildServiceProvider(true);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        var sender = new ClassifyCommandSender(Db, harness.Bus, new MessagingOptions { InlineImageBytes = 0 }, TimeProvider.System);

        await sender.ClaimAndSendAsync(rows, new Dictionary<Guid, OutgoingImage> { [rows[0].ImageId] = new(rows[0].Image!.ObjectKey, [1, 2, 3]) }, CancellationToken.None);

        Assert.Null(harness.Sent.Select<ClassifyImage>().Single().Context.Message.ImageBytes);
    }

    private async Task<List<Classification>> AddStampedRowsAsync(int count)
    {
        var now = DateTime.UtcNow;
        var rows = Enumerable.Range(0, count).Select(i => new Classification
        {
            Id = Guid.CreateVersion7(),
            Image = new StoredImage { Id = Guid.NewGuid(), ObjectKey = $"objects/{i}", ContentHash = $"hash-{i}", Format = "png", CreatedAt = now },
            Status = ClassificationStatus.Queued,
            CreatedAt = now,
        }).ToList();
        ClassifyCommandSender.StampBeforeInsert(rows, now);
        Db.Classifications.AddRange(rows);
        await Db.SaveChangesAsync();
        Assert.All(rows, row => Assert.Equal(now, row.PublishedAt));
        return rows;
    }

    private ClassifierDbContext Db => _database.Context;

    /// <summary>The first transaction commits, then the call is cancelled, as a caller's token may end it just after the commit.</summary>
    private sealed class CancelledAfterFirstCommit : DbTransactionInterceptor
    {
        private int _done;

        public override Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default) =>
            Interlocked.Exchange(ref _done, 1) == 0 ? throw new OperationCanceledException() : Task.CompletedTask;
    }

    /// <summary>The first transaction (the claim) commits; every command after it fails, as when the database goes.</summary>
    private sealed class DatabaseGoneAfterFirstCommit : DbCommandInterceptor, IDbTransactionInterceptor
    {
        private volatile bool _gone;

        public Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            _gone = true;
            return Task.CompletedTask;
        }

        public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default) =>
            _gone ? throw new IOException("database gone") : ValueTask.FromResult(result);
    }

    private sealed class FixedClock(DateTime now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => new(DateTime.SpecifyKind(now, DateTimeKind.Utc));
    }

    public void Dispose() => _database.Dispose();
}
