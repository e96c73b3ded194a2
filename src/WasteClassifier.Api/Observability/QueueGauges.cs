using Microsoft.EntityFrameworkCore;
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
/// interval answers with the values read last. A failed read leaves the last values (the scrape still answers) and warns
/// at most once per interval.
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

    /// <summary>Awaits the read in flight, or starts one when the last began an interval ago or more; else returns at once.</summary>
    public Task RefreshAsync(CancellationToken cancellationToken)
    {
        Task current;
        lock (gate)
        {
            var now = clock.GetUtcNow();
            if (refresh is { IsCompleted: false }) current = refresh;
            else if (lastRead is { } at && now - at < options.RefreshInterval) return Task.CompletedTask;
            else
            {
                lastRead = now;
                current = refresh = RunAsync();
            }
        }
        // Not cancelled with this scrape: other scrapes may await the same read.
        return current.WaitAsync(cancellationToken);
    }

    private async Task RunAsync()
    {
        await Task.Yield(); // outside the lock, and off the caller's stack
        try
        {
            var counts = await readCounts(CancellationToken.None);
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
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        return await db.Classifications.Where(c => c.Status == ClassificationStatus.Queued || c.Status == ClassificationStatus.Processing)
            .GroupBy(c => c.Status).Select(g => new { g.Key, Count = g.LongCount() }).ToDictionaryAsync(g => g.Key, g => g.Count, cancellationToken);
    }
}
