namespace WasteClassifier.Infrastructure.Hosting;

/// <summary>
/// Whether a failure that may repeat every few seconds (a reconnect, a heartbeat) is logged now: a new reason at once, the
/// same reason as the last again only once <see cref="Interval"/> has passed since it was last logged, with how many went
/// unlogged meanwhile. Only the last reason is kept; a success clears it. Safe to call from several threads.
/// </summary>
public sealed class RepeatedFailureLog(TimeSpan interval, TimeProvider? clock = null)
{
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly Lock _gate = new();
    private string? _reason;
    private long _loggedAt;
    private int _unlogged;

    public TimeSpan Interval => interval;

    /// <summary>
    /// Records a failure for <paramref name="reason"/>. True when it is to be logged now; then <paramref name="unlogged"/> is
    /// how many times the same reason went unlogged since it was last logged (0 for a new reason), <paramref name="since"/> how long ago that was.
    /// </summary>
    public bool Failed(string reason, out int unlogged, out TimeSpan since)
    {
        lock (_gate)
        {
            var now = _clock.GetTimestamp();
            since = _clock.GetElapsedTime(_loggedAt, now);
            if (reason == _reason && since < interval)
            {
                _unlogged++;
                unlogged = 0;
                return false;
            }
            unlogged = reason == _reason ? _unlogged : 0;
            (_reason, _loggedAt, _unlogged) = (reason, now, 0);
            return true;
        }
    }

    /// <summary>A success: the next failure is logged whatever its reason. True when a failure was outstanding.</summary>
    public bool Succeeded()
    {
        lock (_gate)
        {
            var outstanding = _reason is not null;
            (_reason, _unlogged) = (null, 0);
            return outstanding;
        }
    }
}
