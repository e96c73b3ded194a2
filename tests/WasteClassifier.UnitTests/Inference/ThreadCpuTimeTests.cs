using System.Diagnostics;
using System.Runtime.InteropServices;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.UnitTests.Inference;

public sealed class ThreadCpuTimeTests
{
    [SkippableFact]
    public void Since_CountsTheThreadsWork_NotItsSleep()
    {
        Skip.IfNot(OperatingSystem.IsLinux() && NativeLibrary.TryLoad("libc.so.6", out _), "thread CPU time is read from glibc only");
        var start = ThreadCpuTime.Now();
        Assert.NotNull(start);

        // Work until the thread has used 30 ms of CPU (however long a busy machine takes to give it that).
        var wall = Stopwatch.StartNew();
        var spin = 0.0;
        while (ThreadCpuTime.Since(start) < TimeSpan.FromMilliseconds(30) && wall.Elapsed < TimeSpan.FromSeconds(20))
            for (var i = 0; i < 10_000; i++) spin += Math.Sqrt(i);
        var worked = ThreadCpuTime.Since(start)!.Value;
        Assert.InRange(worked, TimeSpan.FromMilliseconds(30), wall.Elapsed + TimeSpan.FromMilliseconds(5));
        Assert.True(spin > 0);

        var beforeSleep = ThreadCpuTime.Now();
        Thread.Sleep(200);
        Assert.True(ThreadCpuTime.Since(beforeSleep) < TimeSpan.FromMilliseconds(100), "a sleeping thread uses no CPU");
    }
}
