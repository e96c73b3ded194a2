using System.Runtime.InteropServices;

namespace WasteClassifier.Core.Inference;

/// <summary>glibc malloc settings for a process that runs ONNX Runtime sessions.</summary>
public static class NativeHeap
{
    /// <summary>The glibc tunable that gives large blocks transparent huge pages; see <see cref="HugePagesRequested"/>.</summary>
    public const string HugePagesTunable = "glibc.malloc.hugetlb=1";

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
    internal static void ReturnLargeBlocksOnFree()
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

    /// <summary>
    /// Whether <c>GLIBC_TUNABLES</c> asks glibc to back its large blocks with transparent huge pages. A Run's buffers are
    /// mapped afresh each time (see <see cref="ReturnLargeBlocksOnFree"/>), and with 4 KB pages the kernel faults in and
    /// zeroes them page by page: a worker at saturation took 26,000 page faults per CPU-second, about 5 % of its CPU
    /// (bench/ab.sh: 43.2 and 42.9 CPU ms per image without, 40.8 and 40.9 with, peak memory unchanged). glibc reads the
    /// tunable when the process starts, so it is set in the environment (Dockerfiles, launchSettings.json, bench scripts),
    /// not here.
    /// </summary>
    public static bool HugePagesRequested(string? tunables) =>
        // glibc applies the entries in order, so the last setting of the tunable is the one in force.
        tunables?.Split(':').Select(t => t.Trim()).LastOrDefault(t => t.StartsWith("glibc.malloc.hugetlb=", StringComparison.Ordinal)) == HugePagesTunable;

    /// <summary>The host's transparent huge page mode (<c>always</c>, <c>madvise</c> or <c>never</c>); null where it cannot be read.</summary>
    public static string? TransparentHugePagesMode(string path = "/sys/kernel/mm/transparent_hugepage/enabled")
    {
        try
        {
            // e.g. "always [madvise] never": the bracketed one is in force.
            var text = File.ReadAllText(path);
            var start = text.IndexOf('[');
            var end = text.IndexOf(']', start + 1);
            return start >= 0 && end > start ? text[(start + 1)..end] : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    [DllImport("libc.so.6", ExactSpelling = true)]
    private static extern int mallopt(int param, int value);
}
