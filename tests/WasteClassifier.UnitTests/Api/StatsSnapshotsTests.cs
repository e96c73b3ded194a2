using System.Data.Common;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Api.Stats;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Api;

/// <summary>
/// /stats reads the whole classifications table: every open dashboard asks every 5 s, so a replica shares one computation
/// among its callers and reuses it while fresh.
/// </summary>
public sealed class StatsSnapshotsTests : IAsyncDisposable
{
    private readonly InMemoryDatabase _database = new();
    private readonly SteppingClock _clock = new();
    private readonly StatsQueries _queries = new();
    private ServiceProvider? _services;

    [Fact]
    public async Task Get_WithinCacheSeconds_ReusesTheAnswerThenComputesAgain()
    {
        var stats = Snapshots(cacheSeconds: 5);
        Assert.Equal(0, (await stats.GetAsync(CancellationToken.None)).TotalPredictions);
        await AddCompletedAsync();

        _clock.Advance(TimeSpan.FromSeconds(4));
        Assert.Equal(0, (await stats.GetAsync(CancellationToken.None)).TotalPredictions);

        _clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(1, (await stats.GetAsync(CancellationToken.None)).TotalPredictions);
        Assert.Equal(2, _queries.Computations);
    }

    [Fact]
    public async Task Get_ComputationTookLong_ReusedForFourTimesItsDuration()
    {
        // A table large enough that one answer takes 10 s: answering every 5 s would keep the database busy for good.
        _queries.OnComputation = () => _clock.Advance(TimeSpan.FromSeconds(10));
        var stats = Snapshots(cacheSeconds: 5);
        await stats.GetAsync(CancellationToken.None);
        await AddCompletedAsync();

        _clock.Advance(TimeSpan.FromSeconds(39));
        Assert.Equal(0, (await stats.GetAsync(CancellationToken.None)).TotalPredictions);

        _clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(1, (await stats.GetAsync(CancellationToken.None)).TotalPredictions);
    }

    [Fact]
    public async Task Get_ConcurrentCallers_ShareOneComputation()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _queries.OnComputationAsync = async () =>
        {
            started.TrySetResult();
            await release.Task;
        };
        var stats = Snapshots(cacheSeconds: 5);

        var first = stats.GetAsync(CancellationToken.None);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var others = Enumerable.Range(0, 5).Select(_ => stats.GetAsync(CancellationToken.None)).ToList();
        release.SetResult();

        var answers = await Task.WhenAll([first, .. others]).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, _queries.Computations);
        Assert.All(answers, a => Assert.Same(answers[0], a));
    }

    [Fact]
    public async Task Get_CallerCancelled_TheComputationGoesOnForTheNextCaller()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _queries.OnComputationAsync = () => release.Task;
        var stats = Snapshots(cacheSeconds: 5);
        using var leaving = new CancellationTokenSource();

        var cancelled = stats.GetAsync(leaving.Token);
        await leaving.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(TimeSpan.FromSeconds(10)));
        release.SetResult();

        await stats.GetAsync(CancellationToken.None);
        Assert.Equal(1, _queries.Computations);
    }

    [Fact]
    public async Task Get_ComputationFailed_NotKept()
    {
        var fail = true;
        _queries.OnComputation = () =>
        {
            if (fail) throw new InvalidOperationException("database gone");
        };
        var stats = Snapshots(cacheSeconds: 5);

        await Assert.ThrowsAsync<InvalidOperationException>(() => stats.GetAsync(CancellationToken.None));
        fail = false;
        await AddCompletedAsync();

        Assert.Equal(1, (await stats.GetAsync(CancellationToken.None)).TotalPredictions);
    }

    [Fact]
    public async Task Get_CacheSecondsZero_ComputesForEveryRequest()
    {
        var stats = Snapshots(cacheSeconds: 0);
        await stats.GetAsync(CancellationToken.None);
        await AddCompletedAsync();

        Assert.Equal(1, (await stats.GetAsync(CancellationToken.None)).TotalPredictions);
        Assert.Equal(2, _queries.Computations);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(double.NaN)]
    [InlineData(3601)]
    public void Validated_OutOfRange_NamesTheSetting(double seconds)
    {
        var error = Assert.Throws<InvalidOperationException>(() => new StatsOptions { CacheSeconds = seconds }.Validated());
        Assert.Contains("Stats:CacheSeconds", error.Message);
    }

    private StatsSnapshots Snapshots(double cacheSeconds)
    {
        _services = new ServiceCollection()
            .AddScoped(_ => _database.NewContext(_queries))
            .AddScoped<StatsService>()
            .AddSingleton<TimeProvider>(_clock)
            .BuildServiceProvider();
        return new StatsSnapshots(_services.GetRequiredService<IServiceScopeFactory>(), new StatsOptions { CacheSeconds = cacheSeconds }.Validated(),
            _clock, new RunningApplication(), NullLogger<StatsSnapshots>.Instance);
    }

    private async Task AddCompletedAsync()
    {
        var now = _clock.GetUtcNow().UtcDateTime;
        _database.Context.Classifications.Add(new Classification
        {
            Id = Guid.CreateVersion7(),
            Image = new StoredImage { Id = Guid.NewGuid(), ObjectKey = $"objects/{Guid.NewGuid():N}", ContentHash = Guid.NewGuid().ToString("N"), Format = "png", CreatedAt = now },
            Status = ClassificationStatus.Completed,
            PredictedClass = "glass",
            CreatedAt = now,
            CompletedAt = now,
        });
        await _database.Context.SaveChangesAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (_services is not null) await _services.DisposeAsync();
        _database.Dispose();
    }

    /// <summary>Counts /stats computations by their first query (the counts by status), and lets a test act inside one.</summary>
    private sealed class StatsQueries : DbCommandInterceptor
    {
        private int _computations;

        public int Computations => _computations;

        public Action? OnComputation { get; set; }

        public Func<Task>? OnComputationAsync { get; set; }

        public override async ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        {
            if (command.CommandText.Contains("GROUP BY \"c\".\"status\"", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref _computations);
                OnComputation?.Invoke();
                if (OnComputationAsync is { } act) await act();
            }
            return result;
        }
    }

    /// <summary>Time moves only when a test moves it: a cold first query must not count in a computation's duration.</summary>
    private sealed class SteppingClock : TimeProvider
    {
        private static readonly DateTimeOffset Start = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
        private TimeSpan _by;

        public void Advance(TimeSpan by) => _by += by;

        public override DateTimeOffset GetUtcNow() => Start + _by;

        public override long GetTimestamp() => (long)(_by.TotalSeconds * TimestampFrequency);
    }

    private sealed class RunningApplication : IHostApplicationLifetime
    {
        public CancellationToken ApplicationStarted => CancellationToken.None;

        public CancellationToken ApplicationStopping => CancellationToken.None;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void StopApplication()
        {
        }
    }
}
