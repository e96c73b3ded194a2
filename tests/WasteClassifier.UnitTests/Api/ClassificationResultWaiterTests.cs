using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.UnitTests.Api;

/// <summary>
/// Announced results answer waiting requests, with the rows read once for all of them; the periodic database check (not
/// started here) is covered end to end.
/// </summary>
public sealed class ClassificationResultWaiterTests : IDisposable
{
    private readonly SqliteConnection _connection = new("Data Source=:memory:");
    private readonly ServiceProvider _services;
    private readonly CountingScopes _scopes;
    private readonly ClassificationResultWaiter _waiter;

    public ClassificationResultWaiterTests()
    {
        _connection.Open();
        _services = new ServiceCollection()
            .AddDbContext<ClassifierDbContext>(options => options.UseSqlite(_connection).UseSnakeCaseNamingConvention())
            .BuildServiceProvider();
        using (var scope = _services.CreateScope()) scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Database.EnsureCreated();
        _scopes = new CountingScopes(_services.GetRequiredService<IServiceScopeFactory>());
        _waiter = new ClassificationResultWaiter(_scopes, NullLogger<ClassificationResultWaiter>.Instance);
    }

    [Fact]
    public async Task IsQueuedHere_RecordedRow_UntilItsResultIsAnnounced()
    {
        var (queued, other) = (Guid.NewGuid(), Guid.NewGuid());

        _waiter.RecordQueued([queued]);

        Assert.True(_waiter.IsQueuedHere(queued));
        Assert.False(_waiter.IsQueuedHere(other));
        await _waiter.FinishedAsync([queued], CancellationToken.None);
        Assert.False(_waiter.IsQueuedHere(queued));
    }

    [Fact]
    public async Task FinishedAsync_AnnouncedFinalRow_EveryRequestWaitingForItGetsTheRow()
    {
        var id = await AddAsync(ClassificationStatus.Completed);
        using var first = _waiter.Watch(id);
        using var second = _waiter.Watch(id);
        using var other = _waiter.Watch(Guid.NewGuid());
        var firstWait = first.WaitAsync(TimeSpan.FromMinutes(1), CancellationToken.None);
        var secondWait = second.WaitAsync(TimeSpan.FromMinutes(1), CancellationToken.None);
        var otherWait = other.WaitAsync(TimeSpan.FromMinutes(1), CancellationToken.None);

        await _waiter.FinishedAsync([id, Guid.NewGuid()], CancellationToken.None);

        var rows = await Task.WhenAll(firstWait, secondWait).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.All(rows, row =>
        {
            Assert.Equal(id, row!.Id);
            Assert.Equal("paper", row.PredictedClass);
            Assert.NotNull(row.Image);
        });
        Assert.False(otherWait.IsCompleted);
        Assert.Equal(1, _scopes.Created);
    }

    [Fact]
    public async Task FinishedAsync_AnnouncedBeforeTheWaitStarts_TheWatchStillAnswers()
    {
        // The request watches, reads the row (queued), and the announcement arrives before it starts waiting.
        var id = await AddAsync(ClassificationStatus.Completed);
        using var watch = _waiter.Watch(id);

        await _waiter.FinishedAsync([id], CancellationToken.None);

        var row = await watch.WaitAsync(TimeSpan.FromMinutes(1), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(id, row!.Id);
    }

    [Fact]
    public async Task FinishedAsync_RowNotFinal_AnswersWithoutARowSoTheRequestReadsItself()
    {
        var id = await AddAsync(ClassificationStatus.Processing);
        using var watch = _waiter.Watch(id);
        var waiting = watch.WaitAsync(TimeSpan.FromMinutes(1), CancellationToken.None);

        await _waiter.FinishedAsync([id], CancellationToken.None);

        Assert.Null(await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task FinishedAsync_NobodyWaits_ReadsNothing()
    {
        using (_waiter.Watch(Guid.NewGuid()))
        {
        }

        await _waiter.FinishedAsync([Guid.NewGuid()], CancellationToken.None);

        Assert.Equal(0, _scopes.Created);
    }

    [Fact]
    public async Task Watch_AfterEveryEarlierWatchIsDisposed_WaitsAfresh()
    {
        var id = await AddAsync(ClassificationStatus.Completed);
        _waiter.Watch(id).Dispose();
        using var watch = _waiter.Watch(id);
        var waiting = watch.WaitAsync(TimeSpan.FromMinutes(1), CancellationToken.None);
        Assert.False(waiting.IsCompleted);

        await _waiter.FinishedAsync([id], CancellationToken.None);

        Assert.Equal(id, (await waiting.WaitAsync(TimeSpan.FromSeconds(10)))!.Id);
    }

    [Fact]
    public async Task WaitAsync_NothingAnnounced_EndsAtItsTimeoutWithoutARow()
    {
        using var watch = _waiter.Watch(Guid.NewGuid());
        Assert.Null(await watch.WaitAsync(TimeSpan.FromMilliseconds(100), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10)));
    }

    private async Task<Guid> AddAsync(string status)
    {
        using var scope = _services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var key = Guid.NewGuid().ToString("N");
        var row = new Classification
        {
            Id = Guid.CreateVersion7(),
            Image = new StoredImage { Id = Guid.NewGuid(), ObjectKey = key, ContentHash = key, Format = "jpeg", CreatedAt = DateTime.UtcNow },
            Status = status,
            PredictedClass = status == ClassificationStatus.Completed ? "paper" : null,
            CreatedAt = DateTime.UtcNow,
        };
        db.Classifications.Add(row);
        await db.SaveChangesAsync();
        return row.Id;
    }

    private sealed class CountingScopes(IServiceScopeFactory inner) : IServiceScopeFactory
    {
        public int Created { get; private set; }

        public IServiceScope CreateScope()
        {
            Created++;
            return inner.CreateScope();
        }
    }

    public void Dispose()
    {
        _services.Dispose();
        _connection.Dispose();
    }
}
