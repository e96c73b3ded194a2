using System.Runtime.InteropServices;

namespace WasteClassifier.LoadTesting;

/// <summary>
/// What Ctrl+C and SIGTERM (a timeout, kill, docker stop) do to <c>wastectl loadtest</c>, by when they come. While the run
/// goes on, the first ends it early (<see cref="StopRun"/>): the report is still written and the cleanup still done. The
/// first to come once the run has ended (its requests all ended: the report being computed or written, the target closed)
/// ends nothing, so the run stays complete, with its own exit code; it skips the cleanup, or during it stops it
/// (<see cref="StopCleanup"/>), and says so. Any other ends the process.
/// </summary>
public sealed class RunSignals(bool cleanup, Action<string> log) : IDisposable
{
    private enum Phase { Running, Finishing, CleaningUp }

    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stopRun = new(), _stopCleanup = new();
    private Phase _phase;
    private PosixSignal? _endedBy;
    private bool _signalledAfterTheRun;

    /// <summary>Cancelled by the signal that ends the run early.</summary>
    public CancellationToken StopRun => _stopRun.Token;

    /// <summary>Cancelled by the first signal once the run has ended.</summary>
    public CancellationToken StopCleanup => _stopCleanup.Token;

    /// <summary>The signal that ended the run early, for the exit code (128 + its number); null when none did.</summary>
    public PosixSignal? EndedBy
    {
        get { lock (_gate) return _endedBy; }
    }

    /// <returns>Whether the process goes on: false for a signal that is to end it.</returns>
    public bool OnSignal(PosixSignal signal)
    {
        bool endsRun, first = false;
        lock (_gate)
        {
            endsRun = _phase == Phase.Running;
            if (endsRun)
            {
                first = _endedBy is null;
                _endedBy ??= signal;
            }
        }
        // Cancelled outside the lock: what the cancellation runs (the run's own callbacks) must not hold it.
        if (!endsRun) return AfterTheRun(signal);
        _stopRun.Cancel();
        return first;
    }

    /// <summary>
    /// The run has ended; <paramref name="result"/> says whether a signal ended it, as the runner read it once its requests
    /// had ended (null when the run never started). A signal that came after that ended nothing: it was the first after the run.
    /// </summary>
    public void RunEnded(LoadRunResult? result)
    {
        PosixSignal? late = null;
        lock (_gate)
        {
            _phase = Phase.Finishing;
            if (result is { Interrupted: false } && _endedBy is { } signal)
            {
                late = signal;
                _endedBy = null;
            }
        }
        if (late is { } s) AfterTheRun(s);
    }

    /// <summary>The cleanup starts: a signal now stops it rather than skips it.</summary>
    public void CleanupStarts()
    {
        lock (_gate) _phase = Phase.CleaningUp;
    }

    private bool AfterTheRun(PosixSignal signal)
    {
        Phase now;
        lock (_gate)
        {
            if (_signalledAfterTheRun) return false;
            _signalledAfterTheRun = true;
            now = _phase;
        }
        var name = signal == PosixSignal.SIGINT ? "Ctrl+C" : signal.ToString();
        // Said either way: a signal ignored without a word seemed to do nothing.
        log(cleanup
            ? $"{name}: {(now == Phase.CleaningUp ? "stopping the cleanup" : "skipping the cleanup")}; another one ends the process now"
            : $"{name}: the run had ended; writing its report; another one ends the process now");
        _stopCleanup.Cancel();
        return true;
    }

    public void Dispose()
    {
        _stopRun.Dispose();
        _stopCleanup.Dispose();
    }
}
