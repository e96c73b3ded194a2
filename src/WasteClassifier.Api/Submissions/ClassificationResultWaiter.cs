using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// Lets requests wait until classifications are finished: long polling (<c>GET /v1/classifications/{id}?wait=</c>) and
/// <c>/predict</c>. One query per <see cref="CheckInterval"/> answers every waiting request of this API process together,
/// instead of each client polling on its own: the benchmark's clients polled about 12 times per image, and those GETs
/// cost the API more CPU than the uploads. The database stays the source of truth, so this works whichever worker or
/// API instance wrote the result.
/// </summary>
public sealed class ClassificationResultWaiter(IServiceScopeFactory scopes, ILogger<ClassificationResultWaiter> logger) : BackgroundService
{
    public static readonly TimeSpan CheckInterval = TimeSpan.FromMilliseconds(50);

    // Bounds one query's parameter list; more waiting ids are checked in several queries.
    private const int IdsPerQuery = 500;

    private readonly ConcurrentDictionary<Guid, Waiter> _waiting = new();
    private readonly SemaphoreSlim _wake = new(0);

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
        if (_waiting.IsEmpty) return;

        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            foreach (var ids in _waiting.Keys.Chunk(IdsPerQuery))
            {
                // By id alone, the status tested here: with the status in the query, PostgreSQL chose the status index and
                // read every finished row of the table on each check, a cost that grew with the table.
                var states = await db.Classifications.AsNoTracking()
                    .Where(c => ids.Contains(c.Id))
                    .Select(c => new { c.Id, c.Status })
                    .ToListAsync(cancellationToken);
                foreach (var state in states.Where(s => ClassificationStatus.IsFinal(s.Status)))
                    if (_waiting.TryRemove(state.Id, out var waiter)) waiter.Finished.TrySetResult();
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The database is away: waiting requests time out and answer what they last read; the next tick tries again.
            logger.LogWarning("Checking {Count} waited-for classifications failed: {Reason}", _waiting.Count, e.Message);
        }
    }

    private sealed class Waiter
    {
        private long _keepUntilTicks;

        public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

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
