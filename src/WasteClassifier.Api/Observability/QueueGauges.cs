using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Observability;

/// <summary>
/// <c>Metrics:QueueGaugeRefreshSeconds</c> (default 5): the least time between two reads of the queue-depth gauges from the
/// database. Several Prometheus servers, or a short scrape interval, would otherwise each cost a query.
/// </summary>
public sealed record QueueGaugeOptions(TimeSpan RefreshInterval)
{
    public const string RefreshSecondsKey = "Metrics:QueueGaugeRefreshSeconds";
    public const int DefaultRefreshSeconds = 5;

    /// <summary>
    /// How long a scrape waits for the read before answering with the last values: well inside Prometheus' default 10 s
    /// scrape timeout, so the HTTP and process metrics still answer while the database is slow or down.
    /// </summary>
    public TimeSpan ScrapeWait { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long one read may take; it is then cancelled and the next scrape after the interval starts another.</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(5);

    public static QueueGaugeOptions From(IConfiguration configuration)
    {
        var seconds = configuration.GetValue(RefreshSecondsKey, DefaultRefreshSeconds);
        if (seconds < 0) throw new InvalidOperationException($"{RefreshSecondsKey} must be 0 or more seconds; got {seconds}");
        return new QueueGaugeOptions(TimeSpan.FromSeconds(seconds));
    }
}

/// <summary>
/// Refreshes the queued and processing gauges (rows per status: every API and worker's) for <c>/metrics</c>: at most one
/// database read per <see cref="QueueGaugeOptions.RefreshInterval"/>, which concurrent scrapes share; a scrape within the
/// interval answers with the values read last. A scrape waits for the read at most <see cref="QueueGaugeOptions.ScrapeWait"/>,
/// then answers with the last values; the read goes on (up to <see cref="QueueGaugeOptions.ReadTimeout"/>) and later scrapes
/// wait for it rather than start another. A failed read leaves the last values and warns at most once per interval.
/// </summary>
public sealed class QueueGauges(Func<CancellationToken, Task<IReadOnlyDictionary<string, long>>> readCounts, QueueGaugeOptions options, TimeProvider clock,
    ILogger<QueueGauges> logger)
{
    private readonly Lock gate = new();
    private Task? refresh;
    private DateTimeOffset? lastRead;
    private DateTimeOffset? lastWarning;

    /// <summary>Counts read in a scope of its own: the read outlives the scrape that started it, which others may await.</summary>
    public QueueGauges(IServiceScopeFactory scopes, QueueGaugeOptions options, TimeProvider clock, ILogger<QueueGauges> logger)
        : this(cancellationToken => ReadAsync(scopes, cancellationToken), options, clock, logger)
    {
    }

    /// <summary>A read started and not yet finished (its values set, or its failure logged): a test moves its clock only once it is over.</summary>
    internal bool ReadInFlight
    {
        get { lock (gate) return refresh is { IsCompleted: false }; }
    }

    /// <summary>
    /// Awaits the read in flight, or starts one when the last began an interval ago or more; else returns at once. Returns
    /// after <see cref="QueueGaugeOptions.ScrapeWait"/> at most, the read still running.
    /// </summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        Task current;
        lock (gate)
        {
            var now = clock.GetUtcNow();
            if (refresh is { IsCompleted: false }) current = refresh;
            else if (lastRead is { } at && now - at < options.RefreshInterval) return;
            else
            {
                lastRead = now;
                current = refresh = RunAsync();
            }
        }
        // Not cancelled with this scrape: other scrapes may await the same read.
        try
        {
            await current.WaitAsync(options.ScrapeWait, clock, cancellationToken);
        }
        catch (TimeoutException)
        {
            // Answer with the last values; RunAsync warns if the read fails.
        }
    }

    private async Task RunAsync()
    {
        await Task.Yield(); // outside the lock, and off the caller's stack
        try
        {
            using var deadline = new CancellationTokenSource(options.ReadTimeout, clock);
            // WaitAsync too: a read that ignores its token still ends, so a later scrape can start another.
            var counts = await readCounts(deadline.Token).WaitAsync(deadline.Token);
            foreach (var status in new[] { ClassificationStatus.Queued, ClassificationStatus.Processing })
                ClassifierMetrics.Classifications.WithLabels(status).Set(counts.GetValueOrDefault(status));
        }
        catch (Exception e)
        {
            bool warn;
            lock (gate)
            {
                var now = clock.GetUtcNow();
                warn = lastWarning is not { } at || now - at >= options.RefreshInterval;
                if (warn) lastWarning = now;
            }
            if (warn) logger.LogWarning("Queue depth not refreshed, /metrics keeps the last values: {Reason}", e.Message);
        }
    }

    private static async Task<IReadOnlyDictionary<string, long>> ReadAsync(IServiceScopeFactory scopes, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        return await ReadCountsAsync(scope.ServiceProvider.GetRequiredService<ClassifierDbContext>(), cancellationToken);
    }

    /// <summary>
    /// Rows queued and processing, tried once: the context's retry strategy (PostgreSQL: 5 retries) kept a read of a database
    /// that is down going for ~16 s, and a scrape answers with the last values sooner anyway.
    /// </summary>
    public static Task<IReadOnlyDictionary<string, long>> ReadCountsAsync(ClassifierDbContext db, CancellationToken cancellationToken) =>
        // A query run inside a strategy's ExecuteAsync is not retried by the context's own strategy.
        new SingleAttempt(db).ExecuteAsync(async token => (IReadOnlyDictionary<string, long>)await db.Classifications
            .Where(c => c.Status == ClassificationStatus.Queued || c.Status == ClassificationStatus.Processing)
            .GroupBy(c => c.Status).Select(g => new { g.Key, Count = g.LongCount() }).ToDictionaryAsync(g => g.Key, g => g.Count, token), cancellationToken);
}
