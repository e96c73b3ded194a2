using System.Diagnostics;

namespace WasteClassifier.MemoryBench;

/// <summary>One line per phase: its own peak (VmHWM reset at its start), what is resident at its end, and where it is held.</summary>
internal sealed class PhaseReport
{
    private readonly List<(string Name, double PeakMb)> peaks = [];
    private string phase = "";
    private Stopwatch watch = new();
    private (TimeSpan User, TimeSpan System) cpuAtStart;

    public PhaseReport() =>
        Console.WriteLine("| phase | peak MB (VmHWM) | resident at end MB | managed allocated MB | GC committed MB (last GC) | gen2 GCs | malloc in use / free held / mmap MB | s | CPU user / sys s | pool threads | notes |\n" +
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");

    public void Start(string name)
    {
        phase = name;
        ProcessMemory.ResetPeak();
        cpuAtStart = Cpu();
        watch = Stopwatch.StartNew();
    }

    public void End(string notes = "")
    {
        var peak = ProcessMemory.StatusMb("VmHWM");
        var cpu = Cpu();
        peaks.Add((phase, peak));
        var gc = GC.GetGCMemoryInfo();
        var (inUse, free, mapped) = ProcessMemory.Malloc();
        Console.WriteLine($"| {phase} | {peak:F0} | {ProcessMemory.StatusMb("VmRSS"):F0} | {GC.GetTotalMemory(false) / 1048576.0:F0} | {gc.TotalCommittedBytes / 1048576.0:F0} | {GC.CollectionCount(2)} | " +
            $"{inUse:F0} / {free:F0} / {mapped:F0} | {watch.Elapsed.TotalSeconds:F1} | " +
            $"{(cpu.User - cpuAtStart.User).TotalSeconds:F1} / {(cpu.System - cpuAtStart.System).TotalSeconds:F1} | {ThreadPool.ThreadCount} | {notes} |");
    }

    private static (TimeSpan User, TimeSpan System) Cpu()
    {
        using var process = Process.GetCurrentProcess();
        return (process.UserProcessorTime, process.PrivilegedProcessorTime);
    }

    public void PrintSummary()
    {
        var load = peaks.First(p => p.Name == "load").PeakMb;
        var overall = peaks.Max(p => p.PeakMb);
        Console.WriteLine($"\npeak after load {load:F0} MB; process peak (VmHWM over all phases) {overall:F0} MB in '{peaks.MaxBy(p => p.PeakMb).Name}'");
    }
}
