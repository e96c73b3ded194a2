using System.Diagnostics;

namespace WasteClassifier.IntegrationTests.Reliability;

/// <summary>
/// The worker as a real child process (the built WasteClassifier.Worker.dll), so it can be killed with SIGKILL or sent
/// SIGTERM; or the trainer (<see cref="StartTrainer"/>).
/// </summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private WorkerProcess(Process process) => _process = process;

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public static WorkerProcess Start(IReadOnlyDictionary<string, string?> settings) => Start(settings, "WasteClassifier.Worker");

    /// <summary>The trainer (the built WasteClassifier.Trainer.dll) as a child process.</summary>
    public static WorkerProcess StartTrainer(IReadOnlyDictionary<string, string?> settings) => Start(settings, "WasteClassifier.Trainer");

    private static WorkerProcess Start(IReadOnlyDictionary<string, string?> settings, string project)
    {
        // Same configuration (Debug/Release) as this test assembly.
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
        var root = UnitRoot();
        var directory = Path.Combine(root, "src", project, "bin", configuration, "net10.0");
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(directory, project + ".dll"));
        foreach (var (key, value) in settings) start.Environment[key.Replace(":", "__")] = value;
        start.Environment["Metrics__Port"] = "0";
        start.Environment["Logging__Format"] = "json";
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new WorkerProcess(process);
    }

    /// <summary>SIGKILL: no drain, no acknowledgement; the broker redelivers whatever it had taken.</summary>
    public void KillHard() => _process.Kill(entireProcessTree: false);

    /// <summary>SIGTERM, as an orchestrator stops a pod; returns how long the process took to exit.</summary>
    public async Task<TimeSpan> TerminateAsync(TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString()])) await kill!.WaitForExitAsync();
        using var timeout = new CancellationTokenSource(limit);
        await _process.WaitForExitAsync(timeout.Token);
        return clock.Elapsed;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    private static string UnitRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "WasteClassifier.sln"))) return dir.FullName;
        throw new InvalidOperationException("no WasteClassifier.sln above the test assembly");
    }
}
