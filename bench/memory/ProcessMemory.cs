using System.Runtime.InteropServices;

namespace WasteClassifier.MemoryBench;

/// <summary>This process's memory as Linux and glibc see it.</summary>
internal static partial class ProcessMemory
{
    /// <summary>A field of /proc/self/status in MB (VmHWM: peak resident since start or the last <see cref="ResetPeak"/>).</summary>
    public static double StatusMb(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0]) / 1024.0;
    }

    /// <summary>Starts a new VmHWM from the current resident size (Linux ≥ 4.0), so each phase gets its own peak.</summary>
    public static void ResetPeak() => File.WriteAllText("/proc/self/clear_refs", "5");

    /// <summary>glibc's heap: bytes in use, free but kept in the arenas, and in separate mmap'd blocks.</summary>
    public static (double InUseMb, double FreeHeldMb, double MappedMb) Malloc()
    {
        var info = mallinfo2();
        const double mb = 1024 * 1024;
        return (info.uordblks / mb, info.fordblks / mb, info.hblkhd / mb);
    }

    public static string Settings()
    {
        var malloc = string.Join(" ", Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith("MALLOC_", StringComparison.Ordinal) || k.StartsWith("DOTNET_GC", StringComparison.OrdinalIgnoreCase))
            .Order().Select(k => $"{k}={Environment.GetEnvironmentVariable(k)}"));
        var gc = System.Runtime.GCSettings.IsServerGC ? "server" : "workstation";
        var concurrent = AppContext.GetData("System.GC.Concurrent") is bool c ? c.ToString() : "default";
        var conserve = AppContext.GetData("System.GC.ConserveMemory")?.ToString() ?? "default";
        return $"{gc} GC, concurrent {concurrent}, conserve memory {conserve}{(malloc.Length > 0 ? ", " + malloc : "")}";
    }

#pragma warning disable IDE1006, CS0649 // glibc's names; filled in by native code
    private struct MallInfo2
    {
        public nuint arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
    }
#pragma warning restore IDE1006, CS0649

    [DllImport("libc", EntryPoint = "mallinfo2")]
    private static extern MallInfo2 mallinfo2();
}
