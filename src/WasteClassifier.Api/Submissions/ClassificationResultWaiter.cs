using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// Lets requests wait until classifications are finished: long polling (<c>GET /v1/classifications/{id}?wait=</c>) and
/// <c>/predict</c>. A waiting request is answered when a worker announces the result (<see cref="Finished"/>, fed by the
/// ClassificationsFinished event), or when this process's own check of the database finds it final. The check covers
/// what an event cannot: an id first waited for just after its event went by (checked on the next
/// <see cref="CheckInterval"/>), and results nobody announced (a fault, a duplicate's copy, a lost event; every
/// <see cref="FullCheckInterval"/>). One query answers every waiting request of this process together: with every
/// waiting id checked every 50 ms, this loop cost the API and PostgreSQL about 0.5 CPU ms per image under load.
/// </summary>
public sealed class ClassificationResultWaiter(IServiceScopeFactory scopes, ILogger<ClassificationResultWaiter> logger) : BackgroundService
{
    public static readonly TimeSpan CheckInterval = TimeSpan.FromMilliseconds(50);
    public static readonly TimeSpan FullCheckInterval = TimeSpan.FromSeconds(1);

    // Bounds one query's parameter list; more waiting ids are checked in several queries.
    private const int IdsPerQuery = 500;

    private readonly ConcurrentDictionary<Guid, Waiter> _waiting = new();
    private readonly SemaphoreSlim _wake = new(0);
    private DateTime _lastFullCheck = DateTime.MinValue;

    /// <summary>Completes when the classification is completed or failed, or when <paramref name="timeout"/> has passed.</summary>
    public async Task WaitAsync(Guid id, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (timeout <= TimeSpan.Zero) return;
        var waiter = _waiting.GetOrAdd(id, _ => new Waiter());
        waiter.KeepUntil(DateTime.UtcNow + timeout);
        if (_wake.CurrentCount == 0) _wake.Release();
        try
        {
            await waiter.Finished.Task.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            // Still running: the caller answers with the current state.
        }
    }

    /// <summary>A worker committed these results: the requests waiting for them answer now.</summary>
    public void Finished(IEnumerable<Guid> ids)
    {
        foreach (var id in ids)
            if (_waiting.TryRemove(id, out var waiter) && waiter.Finished.TrySetResult())
                ClassifierMetrics.WaitsAnswered.WithLabels("event").Inc();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(CheckInterval);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                if (_waiting.IsEmpty) await _wake.WaitAsync(stoppingToken);
                await timer.WaitForNextTickAsync(stoppingToken);
                await CheckAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // shutting down; waiting requests end with the host
        }
    }

    private async Task CheckAsync(CancellationToken cancellationToken)
    {
        var now = DateTime.UtcNow;
        foreach (var (id, waiter) in _waiting)
            if (waiter.NoLongerWantedAt(now)) _waiting.TryRemove(new KeyValuePair<Guid, Waiter>(id, waiter));
        var full = now - _lastFullCheck >= FullCheckInterval;
        var due = _waiting.Where(w => full || !w.Value.CheckedOnce).ToList();
        if (due.Count == 0) return;

        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            foreach (var chunk in due.Chunk(IdsPerQuery))
            {
                var ids = chunk.Select(w => w.Key).ToList();
                // By id alone, the status tested here: with the status in the query, PostgreSQL chose the status index and
                // read every finished row of the table on each check, a cost that grew with the table.
                var states = await db.Classifications.AsNoTracking()
                    .Where(c => ids.Contains(c.Id))
                    .Select(c => new { c.Id, c.Status })
                    .ToListAsync(cancellationToken);
                foreach (var (_, waiter) in chunk) waiter.CheckedOnce = true;
                foreach (var state in states.Where(s => ClassificationStatus.IsFinal(s.Status)))
                    if (_waiting.TryRemove(state.Id, out var waiter) && waiter.Finished.TrySetResult())
                        ClassifierMetrics.WaitsAnswered.WithLabels("check").Inc();
            }
            if (full) _lastFullCheck = now;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The database is away: waiting requests time out and answer what they last read; the next tick tries again.
            logger.LogWarning("Checking {Count} waited-for classifications failed: {Reason}", due.Count, e.Message);
        }
    }

    private sealed class Waiter
    {
        private long _keepUntilTicks;

        public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Set once the database has been asked about it; until then it is checked on every tick.</summary>
        public volatile bool CheckedOnce;

        public void KeepUntil(DateTime until)
        {
            // Several requests may wait for one id; the entry lives as long as the longest of them.
            var ticks = until.Ticks;
            long current;
            while ((current = Interlocked.Read(ref _keepUntilTicks)) < ticks && Interlocked.CompareExchange(ref _keepUntilTicks, ticks, current) != current)
            {
            }
        }

        public bool NoLongerWantedAt(DateTime now) => Interlocked.Read(ref _keepUntilTicks) < now.Ticks;
    }
}
