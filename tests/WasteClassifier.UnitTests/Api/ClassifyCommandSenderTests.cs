using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Submissions;
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

        await Assert.ThrowsAsync<InvalidOperationException>(() => sender.SendStampedAsync(rows, objectKeys: null, CancellationToken.None));

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

        await Assert.ThrowsAsync<OperationCanceledException>(() => sender.SendStampedAsync(rows, objectKeys: null, cancelled.Token));

        Db.ChangeTracker.Clear();
        Assert.All(await Db.Classifications.AsNoTracking().ToListAsync(), row => Assert.Null(row.PublishedAt));
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

    public void Dispose() => _database.Dispose();
}
