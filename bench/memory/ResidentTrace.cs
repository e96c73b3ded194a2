using System.Diagnostics;

namespace WasteClassifier.MemoryBench;

/// <summary>Samples VmRSS and the managed heap on a background thread: where in a phase the peak happens.</summary>
internal sealed class ResidentTrace : IDisposable
{
    private readonly List<(double Ms, double ResidentMb, double ManagedMb)> samples = [];
    private readonly CancellationTokenSource stop = new();
    private readonly Thread thread;

    private ResidentTrace(TimeSpan interval)
    {
        var watch = Stopwatch.StartNew();
        thread = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                lock (samples) samples.Add((watch.Elapsed.TotalMilliseconds, ProcessMemory.StatusMb("VmRSS"), GC.GetTotalMemory(false) / 1048576.0));
                Thread.Sleep(interval);
            }
        })
        { IsBackground = true };
        thread.Start();
    }

    public static ResidentTrace Start(TimeSpan interval) => new(interval);

    public void Print()
    {
        stop.Cancel();
        thread.Join();
        foreach (var (ms, resident, managed) in samples)
            Console.WriteLine($"  {ms,6:F0} ms  resident {resident,4:F0} MB  managed {managed,4:F0} MB");
    }

    public void Dispose() => stop.Cancel();
}
