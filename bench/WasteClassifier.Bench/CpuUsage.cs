using System.Globalization;

namespace WasteClassifier.Bench;

/// <summary>
/// Where the machine's CPU went during a phase, by process group, from /proc (Linux): every process on the machine is
/// counted, so the share taken by the servers and by anything else running (other builds and tests) is visible.
/// </summary>
public sealed class CpuUsage
{
    private static readonly double TicksPerSecond = 100; // USER_HZ: 100 on Linux

    private readonly Dictionary<int, (string Group, double Ticks)> _processes;
    private readonly double _busyTicks;
    private readonly DateTime _at;

    private CpuUsage(Dictionary<int, (string, double)> processes, double busyTicks, DateTime at)
    {
        _processes = processes;
        _busyTicks = busyTicks;
        _at = at;
    }

    /// <summary>Groups, in the order the table prints them.</summary>
    public static readonly string[] Groups = ["api", "workers", "load generator", "rabbitmq", "postgres", "s3rver", "other"];

    public static CpuUsage Take(Deployment deployment)
    {
        var processes = new Dictionary<int, (string, double)>();
        if (!File.Exists("/proc/stat")) return new CpuUsage(processes, 0, DateTime.UtcNow);
        var workers = deployment.Workers.Select(w => w.Id).ToHashSet();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var close = stat.LastIndexOf(')');
                var comm = stat[(stat.IndexOf('(') + 1)..close];
                var fields = stat[(close + 2)..].Split(' ');
                // utime and stime are fields 14 and 15 of the line; fields[0] here is field 3 (state).
                var ticks = double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture);
                var group = pid == deployment.Api.Id ? "api"
                    : workers.Contains(pid) ? "workers"
                    : pid == Environment.ProcessId ? "load generator"
                    : comm.StartsWith("beam", StringComparison.Ordinal) || comm is "erl_child_setup" or "epmd" ? "rabbitmq"
                    : comm == "postgres" ? "postgres"
                    : comm == "node" && File.ReadAllText(Path.Combine(dir, "cmdline")).Contains("s3rver", StringComparison.Ordinal) ? "s3rver"
                    : "other";
                processes[pid] = (group, ticks);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
            {
                // the process ended while being read
            }
        }
        var cpu = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        // user nice system idle iowait irq softirq steal: busy is everything but idle and iowait.
        var busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + cpu[7];
        return new CpuUsage(processes, busy, DateTime.UtcNow);
    }

    /// <summary>Share of the whole machine (all cores = 1) each group used between <paramref name="start"/> and this snapshot.</summary>
    public IReadOnlyDictionary<string, double> SharesSince(CpuUsage start)
    {
        var capacity = (_at - start._at).TotalSeconds * TicksPerSecond * Environment.ProcessorCount;
        var shares = Groups.ToDictionary(g => g, _ => 0.0);
        if (capacity <= 0) return shares;
        var known = 0.0;
        foreach (var (pid, (group, ticks)) in _processes)
        {
            if (group == "other") continue;
            var used = ticks - (start._processes.TryGetValue(pid, out var before) ? before.Ticks : 0);
            shares[group] += used / capacity;
            known += used;
        }
        // "other" is the rest of the machine's busy time, so processes that came and went are counted too.
        shares["other"] = Math.Max(0, (_busyTicks - start._busyTicks - known) / capacity);
        return shares;
    }
}
