using System.Diagnostics;

namespace WasteClassifier.IntegrationTests.Reliability;

/// <summary>Stops and starts the real servers on loopback (as root on the CI machine): RabbitMQ, PostgreSQL 15, s3rver.</summary>
public static class ServerControl
{
    public static async Task StopRabbitMqAsync() => await RunAsync("rabbitmqctl", "stop_app");

    public static async Task StartRabbitMqAsync()
    {
        await RunAsync("rabbitmqctl", "start_app");
        await WaitForPortAsync(5672);
    }

    public static async Task StopPostgresAsync() => await RunAsync("pg_ctlcluster", "15 main stop -m fast");

    public static async Task StartPostgresAsync()
    {
        await RunAsync("pg_ctlcluster", "15 main start");
        await WaitForPortAsync(5432);
        // Pooled connections of this process died with the server: drop them rather than fail the next test's first command.
        Npgsql.NpgsqlConnection.ClearAllPools();
    }

    /// <summary>Kills the s3rver process listening on port 9000 and returns its command line, to start it again as it was.</summary>
    public static async Task<string[]> StopS3Async()
    {
        var (pid, commandLine) = FindS3rver() ?? throw new InvalidOperationException("no s3rver process found (started by tests/tooling/start-services.sh)");
        Process.GetProcessById(pid).Kill(entireProcessTree: true);
        for (var i = 0; i < 50 && PortOpen(9000); i++) await Task.Delay(100);
        return commandLine;
    }

    public static async Task StartS3Async(string[] commandLine)
    {
        // A daemon (start-stop-daemon forks twice and detaches), so it outlives this test process like the original.
        var log = Path.Combine(Path.GetTempPath(), "wasteclassifier-s3rver.log");
        var quoted = string.Join(' ', commandLine.Select(a => "'" + a.Replace("'", "'\\''") + "'"));
        await RunAsync("start-stop-daemon", "--start", "--background", "--make-pidfile", "--pidfile", Path.Combine(Path.GetTempPath(), "wasteclassifier-s3rver.pid"), "--startas", "/bin/bash", "--", "-c", $"exec {quoted} >> '{log}' 2>&1 < /dev/null");
        await WaitForPortAsync(9000);
    }

    public static bool PortOpen(int port)
    {
        try
        {
            using var client = new System.Net.Sockets.TcpClient();
            return client.ConnectAsync("127.0.0.1", port).Wait(500) && client.Connected;
        }
        catch (Exception)
        {
            return false;
        }
    }

    public static async Task WaitForPortAsync(int port, int seconds = 60)
    {
        for (var i = 0; i < seconds * 5; i++)
        {
            if (PortOpen(port)) return;
            await Task.Delay(200);
        }
        throw new TimeoutException($"port {port} did not open within {seconds} s");
    }

    private static (int Pid, string[] CommandLine)? FindS3rver()
    {
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var args = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0', StringSplitOptions.RemoveEmptyEntries);
                // The node process itself (not npm's wrappers): node …/s3rver … -p 9000
                if (args.Length > 1 && Path.GetFileName(args[0]) == "node" && args.Any(a => a.EndsWith("s3rver", StringComparison.Ordinal)) && args.Contains("9000"))
                    return (pid, args);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        return null;
    }

    private static async Task RunAsync(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments.Length == 1 ? arguments[0].Split(' ') : arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited {process.ExitCode}: {await stderr}{await stdout}");
    }
}
