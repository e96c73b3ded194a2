namespace WasteClassifier.Api.Stats;

/// <summary>
/// Shares one /stats computation among the callers of a replica: concurrent requests wait for the same one, and a result is
/// reused while it is fresh (<see cref="StatsOptions.CacheSeconds"/>, stretched for slow computations). Its
/// <see cref="ServiceStats.GeneratedAt"/> tells a caller how old it is. A failed computation is not kept.
/// </summary>
public sealed class StatsSnapshots(IServiceScopeFactory scopes, StatsOptions options, TimeProvider clock, IHostApplicationLifetime lifetime,
    ILogger<StatsSnapshots> logger)
{
    private readonly Lock _lock = new();
    private Snapshot? _latest;
    private Task<Snapshot>? _computing;

    private sealed record Snapshot(ServiceStats Stats, long FinishedAt, TimeSpan ReuseFor);

    public async Task<ServiceStats> GetAsync(CancellationToken cancellationToken)
    {
        if (options.CacheSeconds <= 0) return (await ComputeAsync(cancellationToken)).Stats;

        Task<Snapshot> computing;
        lock (_lock)
        {
            if (_latest is { } latest && clock.GetElapsedTime(latest.FinishedAt) < latest.ReuseFor) return latest.Stats;
            // Not the request's token: the callers that join it, and the next ones, still want the result if this one leaves.
            computing = _computing ??= ComputeAndKeepAsync();
        }
        return (await computing.WaitAsync(cancellationToken)).Stats;
    }

    private async Task<Snapshot> ComputeAndKeepAsync()
    {
        await Task.Yield(); // out of the lock before the first query
        try
        {
            var snapshot = await ComputeAsync(lifetime.ApplicationStopping);
            lock (_lock) _latest = snapshot;
            return snapshot;
        }
        catch (Exception e) when (!lifetime.ApplicationStopping.IsCancellationRequested)
        {
            // Logged here too: callers that left before it failed never see it.
            logger.LogWarning(e, "Computing /stats failed; the next request tries again");
            throw;
        }
        finally
        {
            lock (_lock) _computing = null;
        }
    }

    private async Task<Snapshot> ComputeAsync(CancellationToken cancellationToken)
    {
        var started = clock.GetTimestamp();
        await using var scope = scopes.CreateAsyncScope();
        var stats = await scope.ServiceProvider.GetRequiredService<StatsService>().GetAsync(cancellationToken);
        var took = clock.GetElapsedTime(started);
        var reuseFor = TimeSpan.FromSeconds(Math.Max(options.CacheSeconds, took.TotalSeconds * StatsOptions.SlowComputationFactor));
        return new Snapshot(stats, clock.GetTimestamp(), reuseFor);
    }
}
