using System.Runtime.InteropServices;
using WasteClassifier.LoadTesting;

namespace WasteClassifier.UnitTests.LoadTesting;

public sealed class RunSignalsTests
{
    private static readonly LoadTestOptions Options = new() { Target = new Uri("http://127.0.0.1:1/"), Users = 1 };

    private static LoadRunResult Result(bool interrupted) => new(Options, "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(1), [], Interrupted: interrupted);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SignalAfterTheRequestsEndedBeforeTheRunSaidSo_EndsNothingAndSkipsTheCleanup(bool cleanup)
    {
        // The signal comes while the run puts its result together: the runner, which read its token once the requests had
        // ended, found it complete. The signal was kept as the one that ended the run (exit 130/143) and did not skip the cleanup.
        var log = new List<string>();
        using var signals = new RunSignals(cleanup, log.Add);

        Assert.True(signals.OnSignal(PosixSignal.SIGTERM));
        signals.RunEnded(Result(interrupted: false));

        Assert.Null(signals.EndedBy);
        Assert.True(signals.StopCleanup.IsCancellationRequested);
        Assert.Equal([cleanup ? "SIGTERM: skipping the cleanup; another one ends the process now" : "SIGTERM: the run had ended; writing its report; another one ends the process now"], log);
        // The next one ends the process.
        Assert.False(signals.OnSignal(PosixSignal.SIGINT));
    }

    [Fact]
    public void SignalThatEndedTheRun_KeptForTheExitCodeAndTheCleanupStillDone()
    {
        var log = new List<string>();
        using var signals = new RunSignals(cleanup: true, log.Add);

        Assert.True(signals.OnSignal(PosixSignal.SIGINT));
        // A second one while the run winds down ends the process, as before.
        Assert.False(signals.OnSignal(PosixSignal.SIGINT));
        signals.RunEnded(Result(interrupted: true));

        Assert.True(signals.StopRun.IsCancellationRequested);
        Assert.Equal(PosixSignal.SIGINT, signals.EndedBy);
        Assert.False(signals.StopCleanup.IsCancellationRequested);
        Assert.Empty(log);
    }

    [Fact]
    public void SignalBeforeTheLoadStarted_KeptForTheExitCode()
    {
        using var signals = new RunSignals(cleanup: false, _ => { });

        signals.OnSignal(PosixSignal.SIGTERM);
        signals.RunEnded(null);

        Assert.Equal(PosixSignal.SIGTERM, signals.EndedBy);
    }

    [Fact]
    public void SignalDuringTheCleanup_StopsIt()
    {
        var log = new List<string>();
        using var signals = new RunSignals(cleanup: true, log.Add);
        signals.RunEnded(Result(interrupted: false));
        signals.CleanupStarts();

        Assert.True(signals.OnSignal(PosixSignal.SIGINT));

        Assert.False(signals.StopRun.IsCancellationRequested);
        Assert.True(signals.StopCleanup.IsCancellationRequested);
        Assert.Equal(["Ctrl+C: stopping the cleanup; another one ends the process now"], log);
    }
}
