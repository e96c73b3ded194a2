using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using WasteClassifier.Api.Observability;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.UnitTests.Api;

/// <summary>/metrics' queue-depth gauges: concurrent and rapid scrapes share one database read per interval.</summary>
/// <remarks>Alone in its collection: the gauges are process-wide, and other tests' scrapes would set them meanwhile.</remarks>
[Collection(nameof(QueueGaugesTests))]
public sealed class QueueGaugesTests
{
    private static readonly QueueGaugeOptions FiveSeconds = new(TimeSpan.FromSeconds(5));

    [Fact]
    public async Task ConcurrentScrapes_AwaitTheOneReadInFlight()
    {
        var reads = 0;
        var release = new TaskCompletionSource<IReadOnlyDictionary<string, long>>(TaskCreationOptions.RunContinuationsAsynchronously);
        var gauges = new QueueGauges(_ => { Interlocked.Increment(ref reads); return release.Task; }, FiveSeconds, new MovableClock(), new ListLogger());

        var scrapes = Enumerable.Range(0, 20).Select(_ => Task.Run(() => gauges.RefreshAsync(CancellationToken.None))).ToList();
        await Task.Delay(50);
        Assert.All(scrapes, s => Assert.False(s.IsCompleted)); // each waits for the read, not the last values
        release.SetResult(new Dictionary<string, long> { [ClassificationStatus.Queued] = 42, [ClassificationStatus.Processing] = 3 });
        await Task.WhenAll(scrapes).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(1, reads);
        Assert.Equal(42, ClassifierMetrics.Classifications.WithLabels(ClassificationStatus.Queued).Value);
        Assert.Equal(3, ClassifierMetrics.Classifications.WithLabels(ClassificationStatus.Processing).Value);
    }

    [Fact]
    public async Task RapidScrapes_ReadOncePerInterval()
    {
        var reads = 0;
        var clock = new MovableClock();
        var gauges = new QueueGauges(_ => { reads++; return Task.FromResult(Counts()); }, FiveSeconds, clock, new ListLogger());

        for (var i = 0; i < 5; i++) await gauges.RefreshAsync(CancellationToken.None);
        Assert.Equal(1, reads);
        clock.Advance(TimeSpan.FromSeconds(4.9));
        await gauges.RefreshAsync(CancellationToken.None);
        Assert.Equal(1, reads);
        clock.Advance(TimeSpan.FromSeconds(0.1));
        await gauges.RefreshAsync(CancellationToken.None);
        await gauges.RefreshAsync(CancellationToken.None);
        Assert.Equal(2, reads);
    }

    [Fact]
    public async Task AFailingDatabase_IsReadOncePerInterval_AndWarnedOfAtMostOncePerInterval()
    {
        var reads = 0;
        var clock = new MovableClock();
        var logger = new ListLogger();
        var gauges = new QueueGauges(_ =>
        {
            reads++;
            // The first read fails slowly: the next one starts 5 s after it began, 2 s after its warning.
            if (reads == 1) clock.Advance(TimeSpan.FromSeconds(3));
            throw new InvalidOperationException("database down");
        }, FiveSeconds, clock, logger);

        await gauges.RefreshAsync(CancellationToken.None);
        await gauges.RefreshAsync(CancellationToken.None);
        Assert.Equal((1, 1), (reads, logger.Warnings));
        clock.Advance(TimeSpan.FromSeconds(2));
        await gauges.RefreshAsync(CancellationToken.None);
        Assert.Equal((2, 1), (reads, logger.Warnings));
        clock.Advance(TimeSpan.FromSeconds(5));
        await gauges.RefreshAsync(CancellationToken.None);
        Assert.Equal((3, 2), (reads, logger.Warnings));
    }

    [Fact]
    public async Task AScrapeAborted_DoesNotCancelTheReadOthersAwait()
    {
        var release = new TaskCompletionSource<IReadOnlyDictionary<string, long>>(TaskCreationOptions.RunContinuationsAsynchronously);
        var token = new CancellationToken(true);
        var gauges = new QueueGauges(cancellationToken => { token = cancellationToken; return release.Task; }, FiveSeconds, new MovableClock(), new ListLogger());
        using var aborted = new CancellationTokenSource();

        var first = gauges.RefreshAsync(aborted.Token);
        var second = gauges.RefreshAsync(CancellationToken.None);
        await aborted.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        Assert.False(second.IsCompleted);
        Assert.False(token.IsCancellationRequested);
        release.SetResult(Counts());
        await second.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(token.IsCancellationRequested);
    }

    [Fact]
    public async Task AReadThatHangs_ScrapesAnswerWithinTheWait_WithTheLastValues_AndShareTheOneRead()
    {
        var reads = 0;
        var clock = new MovableClock();
        var hung = new TaskCompletionSource<IReadOnlyDictionary<string, long>>(TaskCreationOptions.RunContinuationsAsynchronously);
        var options = FiveSeconds with { ScrapeWait = TimeSpan.FromMilliseconds(200), ReadTimeout = TimeSpan.FromMinutes(10) };
        var gauges = new QueueGauges(_ => Interlocked.Increment(ref reads) == 1
            ? Task.FromResult<IReadOnlyDictionary<string, long>>(new Dictionary<string, long> { [ClassificationStatus.Queued] = 17 })
            : hung.Task, options, clock, new ListLogger());
        ClassifierMetrics.Classifications.WithLabels(ClassificationStatus.Queued).Set(0);
        await gauges.RefreshAsync(CancellationToken.None);
        // On a loaded machine the first read may outlast the 200 ms wait; the loop below needs it finished: its value set and
        // the read over (seen set while the read was still in flight, the first scrape below awaited it, not the wait).
        var deadline = Stopwatch.StartNew();
        while ((ClassifierMetrics.Classifications.WithLabels(ClassificationStatus.Queued).Value != 17 || gauges.ReadInFlight) && deadline.Elapsed < TimeSpan.FromSeconds(10))
            await Task.Delay(10);

        for (var i = 0; i < 3; i++)
        {
            clock.Advance(TimeSpan.FromSeconds(6)); // the interval has passed each time: only the read in flight stops another
            var watch = Stopwatch.StartNew();
            // Answered after the 200 ms wait, long before the hung read's 10 minutes (with room for a loaded machine).
            await gauges.RefreshAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(150), TimeSpan.FromSeconds(30));
            Assert.Equal(17, ClassifierMetrics.Classifications.WithLabels(ClassificationStatus.Queued).Value);
        }
        Assert.Equal(2, reads);
        hung.SetResult(Counts());
    }

    [Fact]
    public async Task AReadPastItsTimeout_IsCancelled_AndTheNextScrapeReadsAgain()
    {
        var reads = 0;
        var clock = new MovableClock();
        var logger = new ListLogger();
        // A scrape waits far longer than the bound below: only the read's 100 ms deadline lets it answer within it (a bound
        // of 4 s under a 5 s wait left a loaded machine little room).
        var options = new QueueGaugeOptions(TimeSpan.Zero) { ScrapeWait = TimeSpan.FromMinutes(10), ReadTimeout = TimeSpan.FromMilliseconds(100) };
        // Ignores its token: the deadline still ends the read.
        var gauges = new QueueGauges(_ => { Interlocked.Increment(ref reads); return new TaskCompletionSource<IReadOnlyDictionary<string, long>>().Task; },
            options, clock, logger);

        await gauges.RefreshAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        await gauges.RefreshAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal((2, 2), (reads, logger.Warnings)); // a zero interval warns each time
    }

    [Fact]
    public async Task ReadCounts_AgainstADatabaseThatIsDown_IsTriedOnce()
    {
        // A closed port refuses at once; the context's retry strategy (5 retries, growing delays) took ~16 s.
        var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
        DatabaseExtensions.Configure(builder, new DatabaseOptions { Provider = DatabaseProviders.Postgres, ConnectionString = "Host=127.0.0.1;Port=1;Username=x;Password=x;Database=x" },
            Path.GetTempPath());
        await using var db = new ClassifierDbContext(builder.Options);

        var error = await Assert.ThrowsAnyAsync<Exception>(() => QueueGauges.ReadCountsAsync(db, CancellationToken.None));
        // Tried once: the connection's own error, not the strategy's after its retries (told by type, not by time: a loaded
        // machine may take seconds over one try).
        Assert.IsNotType<RetryLimitExceededException>(error);
        Assert.IsAssignableFrom<Npgsql.NpgsqlException>(error);
    }

    [Fact]
    public void Options_DefaultFiveSeconds_NegativeRefusedAtStart()
    {
        Assert.Equal(TimeSpan.FromSeconds(5), QueueGaugeOptions.From(Configuration(null)).RefreshInterval);
        Assert.Equal(TimeSpan.Zero, QueueGaugeOptions.From(Configuration("0")).RefreshInterval);
        var refused = Assert.Throws<InvalidOperationException>(() => QueueGaugeOptions.From(Configuration("-1")));
        Assert.Contains(QueueGaugeOptions.RefreshSecondsKey, refused.Message);
        Assert.Throws<InvalidOperationException>(() => QueueGaugeOptions.From(Configuration("soon")));
    }

    private static IConfiguration Configuration(string? seconds) =>
        new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [QueueGaugeOptions.RefreshSecondsKey] = seconds }).Build();

    private static IReadOnlyDictionary<string, long> Counts() => new Dictionary<string, long> { [ClassificationStatus.Queued] = 1 };

    private sealed class MovableClock : TimeProvider
    {
        private readonly DateTimeOffset _start = new(2026, 12, 2, 10, 0, 0, TimeSpan.Zero);
        private TimeSpan _by;

        public void Advance(TimeSpan by) => _by += by;

        public override DateTimeOffset GetUtcNow() => _start + _by;
    }

    private sealed class ListLogger : ILogger<QueueGauges>
    {
        private int _warnings;

        public int Warnings => Volatile.Read(ref _warnings);

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Warning) Interlocked.Increment(ref _warnings);
        }
    }
}

[CollectionDefinition(nameof(QueueGaugesTests), DisableParallelization = true)]
public sealed class QueueGaugesCollection;
