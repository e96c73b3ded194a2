using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// Lets requests wait until classifications are finished: long polling (<c>GET /v1/classifications/{id}?wait=</c>) and
/// <c>/predict</c>. A request starts a <see cref="Watch"/> before it reads the row, so a result announced between the read
/// and the wait is not missed. A waiting request is answered when a worker announces the result (<see cref="FinishedAsync"/>,
/// fed by the ClassificationsFinished event): the announced rows that someone waits for are read in one query and handed
/// to their requests, which then need no read of their own. This process's own check of the database every
/// <see cref="CheckInterval"/> covers results nobody announced (a duplicate's copy, a lost event). One query answers
/// every waiting request of this process together.
/// </summary>
public sealed class ClassificationResultWaiter(IServiceScopeFactory scopes, ILogger<ClassificationResultWaiter> logger) : BackgroundService
{
    public static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(1);

    // Bounds one query's parameter list; more waiting ids are checked in several queries.
    private const int IdsPerQuery = 500;

    // Rows this process recorded as queued that no worker has announced yet, with when (Environment.TickCount64). A long
    // poll for one of them need not read it first: it exists and is not final. Dropped when announced or answered, and
    // after QueuedLifetime (an event that never came), so a stale entry costs at most a wait for the next check.
    private static readonly TimeSpan QueuedLifetime = TimeSpan.FromMinutes(10);
    private const int MaxQueued = 100_000;

    private readonly ConcurrentDictionary<Guid, Waiter> _waiting = new();
    private readonly ConcurrentDictionary<Guid, long> _queuedHere = new();
    private readonly SemaphoreSlim _wake = new(0);

    /// <summary>This process recorded these rows as queued; call it before their ClassifyImage is sent.</summary>
    public void RecordQueued(IEnumerable<Guid> ids)
    {
        var now = Environment.TickCount64;
        foreach (var id in ids) _queuedHere[id] = now;
        if (_queuedHere.Count <= MaxQueued) return;
        foreach (var (id, at) in _queuedHere)
            if (now - at > QueuedLifetime.TotalMilliseconds) _queuedHere.TryRemove(id, out _);
        // Still too many young ones (nobody polls, events lost): forget them all; requests then read their rows again.
        if (_queuedHere.Count > MaxQueued) _queuedHere.Clear();
    }

    /// <summary>Whether this process recorded <paramref name="id"/> as queued and no result has been announced for it since.</summary>
    public bool IsQueuedHere(Guid id) =>
        _queuedHere.TryGetValue(id, out var at) && Environment.TickCount64 - at <= QueuedLifetime.TotalMilliseconds;

    /// <summary>
    /// Starts waiting for <paramref name="id"/>. Start it before reading the row: a result announced after the read is
    /// then caught. Dispose it when the request no longer waits.
    /// </summary>
    public ResultWatch Watch(Guid id)
    {
        while (true)
        {
            var waiter = _waiting.GetOrAdd(id, _ => new Waiter());
            lock (waiter)
            {
                // Lost a race with the last watcher's Dispose, which took this entry out: start a fresh one.
                if (waiter.Abandoned) continue;
                waiter.Watchers++;
            }
            if (_wake.CurrentCount == 0) _wake.Release();
            return new ResultWatch(this, id, waiter);
        }
    }

    /// <summary>
    /// A worker committed these results: the requests waiting for them answer now, with the rows read here in one query
    /// (a request handed no row, because the read failed or found the row not final, reads it itself).
    /// </summary>
    public async Task FinishedAsync(IReadOnlyCollection<Guid> ids, CancellationToken cancellationToken)
    {
        // First: a request that starts watching after this must read its row, which may be final by now.
        foreach (var id in ids) _queuedHere.TryRemove(id, out _);
        var wanted = ids.Where(_waiting.ContainsKey).Distinct().ToList();
        if (wanted.Count == 0) return;
        var rows = new Dictionary<Guid, Classification>();
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            foreach (var chunk in wanted.Chunk(IdsPerQuery))
            {
                var found = await db.Classifications.Include(c => c.Image).AsNoTracking().Where(c => chunk.Contains(c.Id)).ToListAsync(cancellationToken);
                foreach (var row in found.Where(r => ClassificationStatus.IsFinal(r.Status))) rows[row.Id] = row;
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogWarning("Reading {Count} announced classifications failed; their requests read them themselves: {Reason}", wanted.Count, e.Message);
        }
        foreach (var id in wanted) Answer(id, rows.GetValueOrDefault(id), "event");
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
        var due = _waiting.Keys.ToList();
        if (due.Count == 0) return;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            foreach (var ids in due.Chunk(IdsPerQuery))
            {
                // By id alone, the status tested here: with the status in the query, PostgreSQL chose the status index and
                // read every finished row of the table on each check, a cost that grew with the table.
                var states = await db.Classifications.AsNoTracking()
                    .Where(c => ids.Contains(c.Id))
                    .Select(c => new { c.Id, c.Status })
                    .ToListAsync(cancellationToken);
                foreach (var state in states.Where(s => ClassificationStatus.IsFinal(s.Status))) Answer(state.Id, null, "check");
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The database is away: waiting requests time out and answer what they last read; the next tick tries again.
            logger.LogWarning("Checking {Count} waited-for classifications failed: {Reason}", due.Count, e.Message);
        }
    }

    private void Answer(Guid id, Classification? row, string by)
    {
        _queuedHere.TryRemove(id, out _);
        if (_waiting.TryRemove(id, out var waiter) && waiter.Finished.TrySetResult(row))
            ClassifierMetrics.WaitsAnswered.WithLabels(by).Inc();
    }

    private void Release(Guid id, Waiter waiter)
    {
        lock (waiter)
        {
            if (--waiter.Watchers > 0 || waiter.Finished.Task.IsCompleted) return;
            waiter.Abandoned = true;
        }
        _waiting.TryRemove(new KeyValuePair<Guid, Waiter>(id, waiter));
    }

    /// <summary>One request's wait for one classification; several requests may wait for the same id.</summary>
    public sealed class ResultWatch : IDisposable
    {
        private readonly ClassificationResultWaiter _owner;
        private readonly Guid _id;
        private readonly Waiter _waiter;
        private bool _disposed;

        internal ResultWatch(ClassificationResultWaiter owner, Guid id, Waiter waiter) => (_owner, _id, _waiter) = (owner, id, waiter);

        /// <summary>
        /// Completes when the classification is final, with its row when the announcement brought it (otherwise null: read
        /// it), or with null when <paramref name="timeout"/> has passed.
        /// </summary>
        public async Task<Classification?> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
        {
            if (timeout <= TimeSpan.Zero) return null;
            try
            {
                return await _waiter.Finished.Task.WaitAsync(timeout, cancellationToken);
            }
            catch (TimeoutException)
            {
                // Still running: the caller answers with the current state.
                return null;
            }
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _owner.Release(_id, _waiter);
        }
    }

    internal sealed class Waiter
    {
        public TaskCompletionSource<Classification?> Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        // Guarded by locking the waiter.
        public int Watchers;
        public bool Abandoned;
    }
}
