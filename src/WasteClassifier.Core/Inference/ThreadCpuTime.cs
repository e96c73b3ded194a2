using System.Runtime.InteropServices;

namespace WasteClassifier.Core.Inference;

/// <summary>
/// CPU time used so far by the calling thread (Linux; null elsewhere). Beside the wall-clock time of the same work it
/// tells cost from waiting: a model call that took 40 ms and 30 CPU ms on its thread waited 10 ms for a core (a busy
/// machine, or a container's CPU limit), where 40 CPU ms would mean the model itself had become slower.
/// </summary>
public static class ThreadCpuTime
{
    private const int ClockThreadCpuTimeId = 3; // CLOCK_THREAD_CPUTIME_ID in <time.h> (Linux)
    private static bool unavailable = !OperatingSystem.IsLinux();

    public static TimeSpan? Now()
    {
        if (unavailable) return null;
        try
        {
            if (clock_gettime(ClockThreadCpuTimeId, out var time) == 0)
                return TimeSpan.FromTicks((long)time.Seconds * TimeSpan.TicksPerSecond + (long)time.Nanoseconds / 100);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc (musl names its library differently): no figure, and no second try.
        }
        unavailable = true;
        return null;
    }

    /// <summary>CPU time the calling thread used since <paramref name="start"/> (from <see cref="Now"/> on this thread).</summary>
    public static TimeSpan? Since(TimeSpan? start) => start is { } from && Now() is { } now ? now - from : null;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        // time_t and long: pointer-sized on the Linux ABIs .NET runs on.
        public nint Seconds;
        public nint Nanoseconds;
    }

    [DllImport("libc.so.6", ExactSpelling = true)]
    private static extern int clock_gettime(int clockId, out TimeSpec time);
}
