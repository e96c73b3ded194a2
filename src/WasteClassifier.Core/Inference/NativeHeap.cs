using System.Runtime.InteropServices;

namespace WasteClassifier.Core.Inference;

/// <summary>glibc malloc settings for a process that runs ONNX Runtime sessions.</summary>
internal static class NativeHeap
{
    private const int MallocMmapThreshold = -3; // M_MMAP_THRESHOLD in <malloc.h>
    // glibc's own starting threshold: only its growth is switched off.
    private const int MmapThresholdBytes = 128 * 1024;
    private static int applied;

    /// <summary>
    /// Every block of 128 KB or more gets its own mapping, returned to the OS when it is freed. By default glibc raises this
    /// threshold to the largest block freed so far (up to 32 MB), so after the first few Runs ONNX Runtime's per-run buffers
    /// (and the graph's parsing copies at load) are carved from the malloc arenas (up to 8 per core, shared out among the
    /// threads that allocate), which keep them when they are freed. Measured in bench/memory: up to 380 MB held free in the arenas; VmHWM 670–800 → ~400 MB;
    /// images/s unchanged within noise, system CPU +1 % (the largest buffers were mapped afresh every Run anyway).
    /// </summary>
    public static void ReturnLargeBlocksOnFree()
    {
        if (!OperatingSystem.IsLinux() || Interlocked.Exchange(ref applied, 1) == 1) return;
        try
        {
            mallopt(MallocMmapThreshold, MmapThresholdBytes);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc (musl): nothing to tune.
        }
    }

    [DllImport("libc.so.6", ExactSpelling = true)]
    private static extern int mallopt(int param, int value);
}
