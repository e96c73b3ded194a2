namespace WasteClassifier.UnitTests.LoadTesting;

/// <summary>
/// Time that moves only when the test moves it (<see cref="Advance"/>), with the timers (Task.Delay, CancellationTokenSource)
/// due by then fired in order: a load run's times and waits are then exact, however slowly a loaded machine runs it.
/// </summary>
internal sealed class ManualClock : TimeProvider
{
    private readonly Lock _gate = new();
    private readonly List<ManualTimer> _timers = [];
    private TimeSpan _now;

    public TimeSpan Now
    {
        get { lock (_gate) return _now; }
    }

    /// <summary>
    /// Timers due at the same instant fire latest created first (by default, first created first): on the system clock
    /// their order is not given, so a test can try both.
    /// </summary>
    public bool TiesLatestFirst { get; init; }

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => Now.Ticks;

    public override DateTimeOffset GetUtcNow() => DateTimeOffset.UnixEpoch + Now;

    /// <summary>When the timers still to fire are due (the run's end among them), from the clock's start.</summary>
    public IReadOnlyList<TimeSpan> Pending()
    {
        lock (_gate) return _timers.Where(t => t.Due is not null).Select(t => t.Due!.Value).Order().ToList();
    }

    /// <summary>Timers still to fire that are due within <paramref name="span"/> from now.</summary>
    public int PendingWithin(TimeSpan span)
    {
        lock (_gate) return _timers.Count(t => t.Due is { } due && due <= _now + span);
    }

    /// <summary>
    /// Moves time on, then fires each timer due by then, earliest first. A step is one instant: what a timer wakes reads
    /// the new time, never one between (a loop woken at its due time would see the clock jump while it ran).
    /// </summary>
    public void Advance(TimeSpan by)
    {
        lock (_gate) _now += by;
        while (true)
        {
            ManualTimer? next;
            lock (_gate)
            {
                var due = _timers.Where(t => t.Due is { } at && at <= _now).ToList();
                next = TiesLatestFirst ? due.AsEnumerable().Reverse().MinBy(t => t.Due!.Value) : due.MinBy(t => t.Due!.Value);
                if (next is null) return;
                next.Due = next.Period > TimeSpan.Zero ? next.Due + next.Period : null;
            }
            next.Fire();
        }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(this, callback, state);
        lock (_gate) _timers.Add(timer);
        timer.Change(dueTime, period);
        return timer;
    }

    private sealed class ManualTimer(ManualClock clock, TimerCallback callback, object? state) : ITimer
    {
        public TimeSpan? Due { get; set; }

        public TimeSpan Period { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (clock._gate)
            {
                if (!clock._timers.Contains(this)) return false;
                Period = period == Timeout.InfiniteTimeSpan ? TimeSpan.Zero : period;
                Due = dueTime == Timeout.InfiniteTimeSpan ? null : clock._now + dueTime;
            }
            // Due now: fired as a system timer would be, soon and on another thread.
            if (dueTime == TimeSpan.Zero) ThreadPool.QueueUserWorkItem(_ => clock.Advance(TimeSpan.Zero));
            return true;
        }

        public void Fire()
        {
            // Not on the test's synchronization context: what the callback completes must not continue there.
            var context = SynchronizationContext.Current;
            SynchronizationContext.SetSynchronizationContext(null);
            try
            {
                callback(state);
            }
            finally
            {
                SynchronizationContext.SetSynchronizationContext(context);
            }
        }

        public void Dispose()
        {
            lock (clock._gate) clock._timers.Remove(this);
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
