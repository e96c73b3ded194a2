using MassTransit;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.UnitTests.Api;

/// <summary>New rows are saved already stamped as sent; a failed send must hand them back to the re-publisher.</summary>
public sealed class ClassifyCommandSenderTests : IDisposable
{
    private readonly SqliteConnection _connection = new("Data Source=:memory:");
    private readonly ClassifierDbContext _db;

    public ClassifyCommandSenderTests()
    {
        _connection.Open();
        _db = new ClassifierDbContext(new DbContextOptionsBuilder<ClassifierDbContext>().UseSqlite(_connection).UseSnakeCaseNamingConvention().Options);
        _db.Database.EnsureCreated();
    }

    [Fact]
    public async Task SendStamped_BrokerRefuses_StampsClearedAndTheErrorRaised()
    {
        var rows = await AddStampedRowsAsync(3);
        var sender = new ClassifyCommandSender(_db, new RefusingSendEndpoints(), new MessagingOptions(), TimeProvider.System);

        await Assert.ThrowsAsync<InvalidOperationException>(() => sender.SendStampedAsync(rows, objectKeys: null, CancellationToken.None));

        _db.ChangeTracker.Clear();
        var stored = await _db.Classifications.AsNoTracking().ToListAsync();
        Assert.Equal(3, stored.Count);
        Assert.All(stored, row => Assert.Null(row.PublishedAt));
    }

    [Fact]
    public async Task SendStamped_RequestCancelled_StampsStillCleared()
    {
        var rows = await AddStampedRowsAsync(2);
        var sender = new ClassifyCommandSender(_db, new RefusingSendEndpoints(new OperationCanceledException()), new MessagingOptions(), TimeProvider.System);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAsync<OperationCanceledException>(() => sender.SendStampedAsync(rows, objectKeys: null, cancelled.Token));

        _db.ChangeTracker.Clear();
        Assert.All(await _db.Classifications.AsNoTracking().ToListAsync(), row => Assert.Null(row.PublishedAt));
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
        _db.Classifications.AddRange(rows);
        await _db.SaveChangesAsync();
        Assert.All(rows, row => Assert.Equal(now, row.PublishedAt));
        return rows;
    }

    public void Dispose()
    {
        _db.Dispose();
        _connection.Dispose();
    }

    /// <summary>A broker that cannot be reached: every send endpoint lookup fails.</summary>
    private sealed class RefusingSendEndpoints(Exception? failure = null) : ISendEndpointProvider
    {
        public Task<ISendEndpoint> GetSendEndpoint(Uri address) => Task.FromException<ISendEndpoint>(failure ?? new InvalidOperationException("broker unreachable"));

        public ConnectHandle ConnectSendObserver(ISendObserver observer) => throw new NotSupportedException();
    }
}
