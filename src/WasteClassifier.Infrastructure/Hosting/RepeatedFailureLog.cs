namespace WasteClassifier.Infrastructure.Hosting;

/// <summary>
/// Whether a failure that may repeat every few seconds (a reconnect, a heartbeat) is logged now: a new reason at once, a
/// reason already logged again only once <see cref="Interval"/> has passed since it was last logged, with how many went
/// unlogged meanwhile. Each reason since the last success is remembered, up to <see cref="MaxReasons"/>: an outage whose
/// cause alternates (refused, then timed out, then refused, during a failover) logs each cause once per interval, not at
/// every try. A success forgets them all. Safe to call from several threads.
/// </summary>
public sealed class RepeatedFailureLog(TimeSpan interval, TimeProvider? clock = null)
{
    /// <summary>Reasons remembered at most; past it the one logged longest ago is forgotten (a message that varies per failure).</summary>
    public const int MaxReasons = 16;

    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, (long LoggedAt, int Unlogged)> _reasons = new(StringComparer.Ordinal);

    public TimeSpan Interval => interval;

    /// <summary>
    /// Records a failure for <paramref name="reason"/>. True when it is to be logged now; then <paramref name="unlogged"/> is
    /// how many times the same reason went unlogged since it was last logged (0 for a new reason), <paramref name="since"/>
    /// how long ago that was (zero for a new reason).
    /// </summary>
    public bool Failed(string reason, out int unlogged, out TimeSpan since)
    {
        lock (_gate)
        {
            var now = _clock.GetTimestamp();
            if (_reasons.TryGetValue(reason, out var seen))
            {
                since = _clock.GetElapsedTime(seen.LoggedAt, now);
                if (since < interval)
                {
                    _reasons[reason] = seen with { Unlogged = seen.Unlogged + 1 };
                    unlogged = 0;
                    return false;
                }
                unlogged = seen.Unlogged;
            }
            else
            {
                (since, unlogged) = (TimeSpan.Zero, 0);
                if (_reasons.Count >= MaxReasons) _reasons.Remove(_reasons.MinBy(r => r.Value.LoggedAt).Key);
            }
            _reasons[reason] = (now, 0);
            return true;
        }
    }

    /// <summary>A success: the next failure is logged whatever its reason. True when a failure was outstanding.</summary>
    public bool Succeeded()
    {
        lock (_gate)
        {
            var outstanding = _reasons.Count > 0;
            _reasons.Clear();
            return outstanding;
        }
    }
}
