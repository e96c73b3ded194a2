using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Npgsql;
using WasteClassifier.Cli;
using WasteClassifier.Cli.Commands;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;
using WasteClassifier.LoadTesting;
using WasteClassifier.LoadTesting.Reporting;

namespace WasteClassifier.IntegrationTests.Cli;

/// <summary>
/// <c>wastectl loadtest</c> turns its arguments into a run (profiles, open or closed loop) and refuses what it cannot send
/// as asked, naming the argument, before it sends anything.
/// </summary>
public sealed class LoadTestCommandTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("wastectl-loadtest-test").FullName;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Run_ImageThatCannotBeMadeUnique_RefusedWithTheFileAndTheWayOut(bool queue)
    {
        // Queue mode makes each image new content once per run, so it is refused before the load too (it failed later, in
        // the runner, with an ArgumentException and no way out named).
        File.WriteAllBytes(Path.Combine(_directory, "not-really.jpg"), "GIF89a-not-a-jpeg"u8.ToArray());
        var command = new LoadTestCommand();
        string[] args = [.. queue ? ["--queue"] : new[] { "--target", "http://127.0.0.1:1" },
            "--users", "1", "--duration", "1", "--images", _directory, "--out", Path.Combine(_directory, "out")];

        var error = Assert.Throws<UsageException>(() => command.Run(new CommandArguments(args, command.ValueOptions, command.FlagOptions)));

        Assert.Contains("not-really.jpg", error.Message);
        Assert.Contains("remove it from the image folder", error.Message);
        Assert.DoesNotContain("--repeat-images", error.Message);
        Assert.False(Directory.Exists(Path.Combine(_directory, "out")));
    }

    [Theory]
    [InlineData("report")]
    [InlineData("report/inside")]
    public void Run_OutThatCannotBeAFolder_RefusedBeforeTheLoad(string output)
    {
        // A file stands where the folder (or its parent) would be.
        File.WriteAllText(Path.Combine(_directory, "report"), "an earlier report's text");
        var command = new LoadTestCommand();
        string[] args = ["--target", "http://127.0.0.1:1", "--users", "1", "--max-requests", "1", "--duration", "1", "--generate", "1", "--out", Path.Combine(_directory, output)];

        // Found after the run, it would lose the report.
        var error = Assert.Throws<UsageException>(() => command.Run(new CommandArguments(args, command.ValueOptions, command.FlagOptions)));

        Assert.Contains($"--out {Path.Combine(_directory, output)} cannot hold the report", error.Message);
    }

    [Fact]
    public void Output_RunWroteNoReport_TheFoldersItCreatedAreRemovedParentsIncluded()
    {
        Directory.CreateDirectory(Path.Combine(_directory, "earlier"));

        LoadTestCommand.RemoveIfEmpty(LoadTestCommand.PrepareOutput(Path.Combine(_directory, "a", "b", "c")));

        // --out a/b/c left a/b behind; what was already there stays.
        Assert.False(Directory.Exists(Path.Combine(_directory, "a")));
        Assert.True(Directory.Exists(Path.Combine(_directory, "earlier")));
    }

    [Fact]
    public void Output_RunWroteNoReport_AFolderWrittenToMeanwhileIsKept()
    {
        var created = LoadTestCommand.PrepareOutput(Path.Combine(_directory, "a", "b", "c"));
        File.WriteAllText(Path.Combine(_directory, "a", "b", "notes.txt"), "someone else's");

        LoadTestCommand.RemoveIfEmpty(created);

        Assert.False(Directory.Exists(Path.Combine(_directory, "a", "b", "c")));
        Assert.True(File.Exists(Path.Combine(_directory, "a", "b", "notes.txt")));
    }

    [Fact]
    public async Task Run_Sigterm_EndsTheRunAndStillWritesTheReport()
    {
        // A target that takes the upload's connection and never answers: the request stays in flight until the signal.
        using var api = new TcpListener(IPAddress.Loopback, 0);
        api.Start();
        var output = Path.Combine(_directory, "out");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "wastectl.dll"), "loadtest", "--target", $"http://127.0.0.1:{((IPEndPoint)api.LocalEndpoint).Port}",
                     "--users", "1", "--duration", "600", "--generate", "1", "--size", "64x48", "--out", output })
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            using var upload = await AcceptUploadAsync(api, timeout.Token);

            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)])) await kill.WaitForExitAsync(timeout.Token);
            await process.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!process.HasExited) process.Kill();
        }

        // 143 (128 + SIGTERM: interrupted, not failed) and the report of what was measured, not a process killed without one.
        Assert.True(process.ExitCode == LoadTestCommand.InterruptedBySigterm, $"exit {process.ExitCode}: {await stderr}");
        using var report = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "report.json")));
        Assert.True(report.RootElement.GetProperty("run").GetProperty("interrupted").GetBoolean());
        // Open when the signal came: counted apart, not as a failure.
        Assert.Equal(1, report.RootElement.GetProperty("counts").GetProperty("outstanding_at_interrupt").GetInt32());
        Assert.Equal(0, report.RootElement.GetProperty("counts").GetProperty("failed").GetInt32());
        Assert.Contains("\"report\"", await stdout);
    }

    [Fact]
    public async Task CleanUp_DatabaseThatNeverAnswers_SaysWhatWasLeftRatherThanFail()
    {
        // Takes the connection and never answers: each attempt times out after 1 s, and PostgreSQL's retrying strategy
        // then fails with RetryLimitExceededException, no DbException; it escaped, and the run's summary was never printed.
        using var database = new TcpListener(IPAddress.Loopback, 0);
        database.Start();
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Database:Provider"] = "postgres",
            ["Database:ConnectionString"] = $"Host=127.0.0.1;Port={((IPEndPoint)database.LocalEndpoint).Port};Username=loadtest;Password=loadtest;Database=loadtest;Timeout=1",
            ["DataDirectory"] = _directory,
        }).Build();

        await LoadTestCommand.CleanUpAsync(configuration, "loadtest-unreachable", DateTime.UtcNow, [], accepted: 1);
    }

    [Fact]
    public async Task CleanUp_DatabaseThatHoldsNoneOfTheRunsRows_DidNotFinish()
    {
        // A database that answers but is not the target's (a fresh embedded one here): nothing of the run is found there, so
        // the run's rows are all left. It exited 0, and a script gating on the exit code took the run for cleaned up.
        var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
        DatabaseExtensions.Configure(builder, new DatabaseOptions { Provider = DatabaseProviders.Sqlite }, _directory);
        await using (var db = new ClassifierDbContext(builder.Options)) await db.Database.MigrateAsync();
        Directory.CreateDirectory(Path.Combine(_directory, "objects", "waste-images"));
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["DataDirectory"] = _directory,
        }).Build();

        var finished = await LoadTestCommand.CleanUpAsync(configuration, "loadtest-elsewhere", DateTime.UtcNow, [], accepted: 3);

        Assert.False(finished);
    }

    [Fact]
    public async Task CleanUp_DatabaseThatNeverAnswers_EndsWithinSecondsAndSaysSo()
    {
        // The connection string sets no Timeout: Npgsql's 15 s per connect, and the services' five retries up to 5 s apart,
        // made each statement take over a minute and a half to fail.
        using var database = new TcpListener(IPAddress.Loopback, 0);
        database.Start();
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Database:Provider"] = "postgres",
            ["Database:ConnectionString"] = $"Host=127.0.0.1;Port={((IPEndPoint)database.LocalEndpoint).Port};Username=loadtest;Password=loadtest;Database=loadtest",
            ["DataDirectory"] = _directory,
        }).Build();
        var watch = Stopwatch.StartNew();

        var finished = await LoadTestCommand.CleanUpAsync(configuration, "loadtest-unreachable", DateTime.UtcNow, [], accepted: 1);

        Assert.False(finished);
        // Three connects of 3 s and two pauses of up to 1 s; the rest is room for a loaded machine.
        Assert.InRange(watch.Elapsed.TotalSeconds, 0, 30);
    }

    [Theory]
    [InlineData("TERM", true)]
    [InlineData("TERM", false)]
    [InlineData("INT", true)]
    [InlineData("INT", false)]
    public async Task Run_SignalDuringTheCleanup_StopsItPromptlyAndSaysWhatWasLeft(string signal, bool runEndedBySignal)
    {
        // The upload's connection is taken and never answered, so the run lasts until the first signal (as docker stop, a
        // timeout or Ctrl+C sends it) or ends by itself after 1 s with the request unfinished. The cleanup then reaches a
        // database that answered the check before the load but now takes the connection and never answers, so it would last some 11 s (three connects of 3 s, a
        // second apart at most); the signal that comes while it runs stops it. Ignored, the cleanup ran to its end.
        await using var run = await CleanupRun.StartAsync(_directory, runEndedBySignal);
        var stopped = Stopwatch.StartNew();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            using var upload = await AcceptUploadAsync(run.Api, timeout.Token);
            run.Database.Drop();
            if (runEndedBySignal) await SignalAsync(run.Process, signal, timeout.Token);
            await run.Logged("cleanup: removing the run's", timeout.Token);
            await SignalAsync(run.Process, signal, timeout.Token);
            stopped.Restart();
            await run.Process.WaitForExitAsync(timeout.Token);
        }
        var exitedAfter = stopped.Elapsed;

        // Killed midway, it would exit by the signal, with neither the cleanup's last word nor the summary.
        var log = await run.LogAsync();
        Assert.True(run.Process.ExitCode == 1, $"exit {run.Process.ExitCode}: {log}");
        Assert.Contains("stopping the cleanup", log);
        Assert.Contains("cleanup stopped before it ended; remove what it left with --cleanup --source loadtest-", log);
        Assert.Contains("\"report\"", await run.Stdout);
        // Under the 11 s the cleanup would last if not stopped; 8 s as after the run, its exit taking as long on a loaded machine.
        Assert.True(exitedAfter < TimeSpan.FromSeconds(8), $"exited {exitedAfter.TotalSeconds:F1} s after the signal: {log}");
    }

    [Theory]
    [InlineData("TERM", false)]
    [InlineData("INT", true)]
    public async Task Run_SignalAfterTheRunBeforeTheCleanup_SkipsItAndSaysWhatWasLeft(string signal, bool runEndedBySignal)
    {
        // report.json is a FIFO nobody reads yet, so the run, once ended, waits while writing its report: the signal
        // comes then, before the cleanup. It was swallowed (the run had ended by itself: the cleanup then ran its 11 s
        // against the database that never answers) or, after the signal that ended the run, ended the process before any cleanup.
        var output = Path.Combine(_directory, "out");
        Directory.CreateDirectory(output);
        var fifo = Path.Combine(output, "report.json");
        using (var mkfifo = Process.Start("mkfifo", [fifo])) await mkfifo.WaitForExitAsync();
        await using var run = await CleanupRun.StartAsync(_directory, runEndedBySignal);
        var stopped = Stopwatch.StartNew();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            using var upload = await AcceptUploadAsync(run.Api, timeout.Token);
            run.Database.Drop();
            if (runEndedBySignal) await SignalAsync(run.Process, signal, timeout.Token);
            await run.Logged("run ended: writing the report", timeout.Token);
            await SignalAsync(run.Process, signal, timeout.Token);
            stopped.Restart();
            // Its handler's word, or time enough for it; then the report is let through.
            await Task.WhenAny(run.Logged("skipping the cleanup", timeout.Token), Task.Delay(TimeSpan.FromSeconds(10), timeout.Token));
            var drained = Task.Run(async () =>
            {
                await using var report = new FileStream(fifo, FileMode.Open, FileAccess.Read);
                await report.CopyToAsync(Stream.Null);
            });
            await run.Process.WaitForExitAsync(timeout.Token);
            // Ended before it opened its report, the reader still waits for a writer: let it go.
            if (await Task.WhenAny(drained, Task.Delay(1000, timeout.Token)) != drained)
                await using (new FileStream(fifo, FileMode.Open, FileAccess.Write)) { }
            await drained;
        }
        var exitedAfter = stopped.Elapsed;

        var log = await run.LogAsync();
        Assert.True(run.Process.ExitCode == 1, $"exit {run.Process.ExitCode}: {log}");
        Assert.Contains("skipping the cleanup", log);
        Assert.Contains("cleanup skipped; remove the run with --cleanup --source loadtest-", log);
        Assert.DoesNotContain("cleanup: removing", log);
        Assert.Contains("\"report\"", await run.Stdout);
        // Well under the 11 s of a cleanup let run against the database that never answers (connects of 3 s, two retries);
        // 6 s here was 4.8 s used on a loaded 2-core machine, the reading of the report and the process's own exit included.
        Assert.True(exitedAfter < TimeSpan.FromSeconds(8), $"exited {exitedAfter.TotalSeconds:F1} s after the signal: {log}");
    }

    /// <summary>
    /// <c>wastectl loadtest --cleanup</c> in its own process against an API that takes the upload's connection and never
    /// answers, its cleanup against a PostgreSQL (a migrated database of its own) that passes the check before the load and,
    /// once <see cref="SilentRelay.Drop"/> is called, takes the connection and never answers; stderr is read line by line.
    /// </summary>
    private sealed class CleanupRun : IAsyncDisposable
    {
        private readonly System.Text.StringBuilder _log = new();
        private readonly List<(string Text, TaskCompletionSource Seen)> _awaited = [];
        private Task _stderr = Task.CompletedTask;

        public required Process Process { get; init; }

        public required TcpListener Api { get; init; }

        public required SilentRelay Database { get; init; }

        public required string DatabaseConnectionString { get; init; }

        public required Task<string> Stdout { get; init; }

        public static async Task<CleanupRun> StartAsync(string directory, bool runEndedBySignal)
        {
            var connectionString = await TestServices.CreateDatabaseAsync("loadtest_cleanup");
            var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
            DatabaseExtensions.Configure(builder, new DatabaseOptions { Provider = DatabaseProviders.Postgres, ConnectionString = connectionString }, directory);
            await using (var db = new ClassifierDbContext(builder.Options)) await db.Database.MigrateAsync();
            var server = new NpgsqlConnectionStringBuilder(connectionString);
            var database = new SilentRelay(server.Host!, server.Port);
            // The folder store's folder exists, as the embedded API's does once started.
            Directory.CreateDirectory(Path.Combine(directory, "data", "objects", "waste-images"));
            var api = new TcpListener(IPAddress.Loopback, 0);
            api.Start();
            // Through env, which execs dotnet under the same pid: a runner started in the background (nohup, `&` in a script)
            // hands SIGINT down ignored, and .NET keeps it so, as a program should; Ctrl+C comes to one started at a terminal.
            var start = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in new[] { "--default-signal=INT", "dotnet", Path.Combine(AppContext.BaseDirectory, "wastectl.dll"), "loadtest", "--target", $"http://127.0.0.1:{((IPEndPoint)api.LocalEndpoint).Port}",
                         "--users", "1", "--duration", runEndedBySignal ? "600" : "1", "--drain", "0", "--generate", "1", "--size", "64x48",
                         "--out", Path.Combine(directory, "out"), "--cleanup" })
                start.ArgumentList.Add(arg);
            start.Environment["Database__Provider"] = "postgres";
            start.Environment["Database__ConnectionString"] = new NpgsqlConnectionStringBuilder(connectionString) { Host = "127.0.0.1", Port = database.Port }.ConnectionString;
            start.Environment["ObjectStore__Provider"] = "filesystem";
            start.Environment["DataDirectory"] = Path.Combine(directory, "data");
            var process = Process.Start(start)!;
            var run = new CleanupRun
            {
                Process = process,
                Api = api,
                Database = database,
                DatabaseConnectionString = connectionString,
                Stdout = process.StandardOutput.ReadToEndAsync(),
            };
            run._stderr = Task.Run(run.ReadStderrAsync);
            return run;
        }

        /// <summary>Completes once a line of stderr contains the text.</summary>
        public Task Logged(string text, CancellationToken cancellationToken)
        {
            var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_log)
            {
                if (_log.ToString().Contains(text, StringComparison.Ordinal)) seen.TrySetResult();
                else _awaited.Add((text, seen));
            }
            return seen.Task.WaitAsync(cancellationToken);
        }

        /// <summary>All of stderr, once the process has closed it.</summary>
        public async Task<string> LogAsync()
        {
            await _stderr;
            lock (_log) return _log.ToString();
        }

        private async Task ReadStderrAsync()
        {
            while (await Process.StandardError.ReadLineAsync() is { } line)
                lock (_log)
                {
                    _log.AppendLine(line);
                    foreach (var (text, seen) in _awaited)
                        if (line.Contains(text, StringComparison.Ordinal)) seen.TrySetResult();
                }
        }

        public async ValueTask DisposeAsync()
        {
            if (!Process.HasExited) Process.Kill();
            await Process.WaitForExitAsync();
            Process.Dispose();
            Api.Dispose();
            await Database.DisposeAsync();
            await TestServices.DropDatabaseAsync(DatabaseConnectionString);
        }
    }

    [Fact]
    public async Task Run_CleanupWithNoDatabaseInTheDataDirectory_RefusedBeforeAnySubmission()
    {
        // The newcomer's run: the cleanup's DataDirectory (the working directory's data/) is not the embedded API's. Found
        // only after the load, the whole run was left behind; now nothing is sent, and the message says where to look.
        var requests = 0;
        await using var api = await FakeApiAsync(() => Interlocked.Increment(ref requests));
        var dataDirectory = Path.Combine(_directory, "no-database-here");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "wastectl.dll"), "loadtest", "--target", api.Urls.First(),
                     "--users", "1", "--duration", "1", "--max-requests", "2", "--generate", "1", "--size", "64x48",
                     "--out", Path.Combine(_directory, "out"), "--cleanup" })
            start.ArgumentList.Add(arg);
        start.Environment["DataDirectory"] = dataDirectory;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
        }
        finally
        {
            if (!process.HasExited) process.Kill();
        }

        var log = await stderr;
        Assert.True(process.ExitCode == CommandDispatcher.UsageError, $"exit {process.ExitCode}: {log}{await stdout}");
        Assert.Contains($"no database at {Path.Combine(dataDirectory, "wasteclassifier.db")}", log);
        Assert.Contains("--data-directory", log);
        Assert.Equal(0, Volatile.Read(ref requests));
        Assert.False(Directory.Exists(Path.Combine(_directory, "out")));
    }

    /// <summary>
    /// The first connection that is not the readiness probe (answered 200 and closed, as before the load): the upload's,
    /// its request read and never answered.
    /// </summary>
    private static async Task<TcpClient> AcceptUploadAsync(TcpListener api, CancellationToken cancellationToken)
    {
        while (true)
        {
            var client = await api.AcceptTcpClientAsync(cancellationToken);
            var buffer = new byte[4096];
            var read = await client.GetStream().ReadAsync(buffer, cancellationToken);
            if (!System.Text.Encoding.ASCII.GetString(buffer, 0, read).StartsWith("GET /health/ready", StringComparison.Ordinal)) return client;
            await client.GetStream().WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), cancellationToken);
            client.Dispose();
        }
    }

    [Fact]
    public void Run_TargetDown_RefusedWithinSecondsBeforeTheLoad()
    {
        // A port nothing listens on: every submission failed at socket speed (11,421 in 5 s), reason connection_connectionerror.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var command = new LoadTestCommand();
        string[] args = ["--target", $"http://127.0.0.1:{port}", "--users", "2", "--duration", "5", "--generate", "1", "--size", "64x48", "--out", Path.Combine(_directory, "out")];
        var watch = Stopwatch.StartNew();

        var error = Assert.Throws<UnavailableException>(() => command.Run(new CommandArguments(args, command.ValueOptions, command.FlagOptions)));

        Assert.Contains($"target not answering at http://127.0.0.1:{port}/: connection_refused", error.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}");
        Assert.False(Directory.Exists(Path.Combine(_directory, "out")));
    }

    [Fact]
    public async Task Run_TargetNotReady_RefusedWithItsAnswerUnlessNoReadyCheck()
    {
        var requests = 0;
        await using var api = await FakeApiAsync(() => Interlocked.Increment(ref requests), notReady: true);
        var command = new LoadTestCommand();
        string[] args = ["--target", api.Urls.First(), "--users", "1", "--duration", "1", "--max-requests", "2", "--generate", "1", "--size", "64x48", "--out", Path.Combine(_directory, "out")];

        var error = Assert.Throws<UnavailableException>(() => command.Run(new CommandArguments(args, command.ValueOptions, command.FlagOptions)));
        // The failing check and its description, from the API's readiness JSON; the healthy one is not listed.
        Assert.Contains("answered 503 (database unhealthy: the database is unreachable (NpgsqlException: ConnectionRefused);", error.Message);
        Assert.DoesNotContain("object_store", error.Message);
        Assert.Equal(1, Volatile.Read(ref requests));

        // A deliberate outage test loads it anyway.
        Assert.Equal(0, command.Run(new CommandArguments([.. args, "--no-ready-check"], command.ValueOptions, command.FlagOptions)));
        Assert.True(Volatile.Read(ref requests) > 1, $"{requests} requests");
    }

    /// <summary>Answers as the API does, briefly: every upload accepted, and its classification completed.</summary>
    private static async Task<WebApplication> FakeApiAsync(Action onRequest, bool notReady = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var api = builder.Build();
        api.Use((context, next) =>
        {
            onRequest();
            return next(context);
        });
        api.MapPost("/v1/classifications", () => Results.Json(new { items = new[] { new { id = Guid.NewGuid().ToString() } } }, statusCode: 202));
        api.MapGet("/v1/classifications/{id}", (string id) => Results.Json(new { id, status = "completed" }));
        if (notReady)
            api.MapGet("/health/ready", () => Results.Json(new Dictionary<string, object>
            {
                ["status"] = "unhealthy",
                ["checks"] = new Dictionary<string, object>
                {
                    ["database"] = new { status = "unhealthy", description = "the database is unreachable (NpgsqlException: ConnectionRefused)", duration_ms = 2.5 },
                    ["object_store"] = new { status = "healthy", description = "FileSystemObjectStore", duration_ms = 0.4 },
                },
            }, statusCode: 503));
        await api.StartAsync();
        return api;
    }

    private static async Task SignalAsync(Process process, string signal, CancellationToken cancellationToken)
    {
        using var kill = Process.Start("kill", [$"-{signal}", process.Id.ToString(CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync(cancellationToken);
    }

    [Fact]
    public void ExitCode_SubmissionsThrottledAtTheEnd_NothingFailedSoZero()
    {
        // A closed loop whose last submission was answered 429 with a Retry-After past the duration: not retried, not failed.
        var records = new List<RequestRecord> { new() { StartedS = 0.95, Outcome = RequestOutcome.ThrottledAtEnd, Reason = "throttled" } };
        records.AddRange(new[] { 0.2, 0.4, 0.6 }.Select(f => new RequestRecord
        {
            StartedS = f - 0.1,
            AcceptedS = f - 0.05,
            FinishedS = f,
            ClientMs = 100,
            Outcome = RequestOutcome.Completed,
        }));
        var options = new LoadTestOptions { Target = new Uri("http://127.0.0.1:1/"), Users = 1, Duration = TimeSpan.FromSeconds(1) };

        var report = LoadReport.From(new LoadRunResult(options, "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(1), records));

        Assert.Equal(0, LoadTestCommand.ExitCode(report));
    }

    [Fact]
    public void ExitCode_RunEndedBySignal_128PlusTheSignalUnlessTheCleanupDidNotFinish()
    {
        // Ctrl+C with one request open and one failed before it: interrupted (the report says what it measured), not a
        // failure of the run; a gate still sees it did not finish.
        var records = new List<RequestRecord>
        {
            new() { StartedS = 0.1, AcceptedS = 0.15, FinishedS = 0.3, ClientMs = 200, Outcome = RequestOutcome.Completed },
            new() { StartedS = 0.4, FinishedS = 0.45, Outcome = RequestOutcome.Failed, Reason = "http_500" },
            new() { StartedS = 0.5, AcceptedS = 0.55, Outcome = RequestOutcome.OutstandingAtInterrupt, Reason = "interrupted" },
        };
        var options = new LoadTestOptions { Target = new Uri("http://127.0.0.1:1/"), Users = 1, Duration = TimeSpan.FromSeconds(30) };
        var report = LoadReport.From(new LoadRunResult(options, "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(0.6), records, Interrupted: true));

        Assert.Equal(130, LoadTestCommand.ExitCode(report, endedBy: PosixSignal.SIGINT));
        Assert.Equal(143, LoadTestCommand.ExitCode(report, endedBy: PosixSignal.SIGTERM));
        // What the cleanup left is for the user to remove: that says 1, as it does after a run that was not interrupted.
        Assert.Equal(1, LoadTestCommand.ExitCode(report, cleanedUp: false, endedBy: PosixSignal.SIGINT));
        Assert.Equal(1, LoadTestCommand.ExitCode(report with { Run = report.Run with { Interrupted = false } }));
    }

    [Fact]
    public void ExitCode_EverySubmissionThrottledToTheEnd_One()
    {
        // An API answering 503 throughout (its database down): every request is still waiting out a Retry-After when
        // submissions stop. Nothing failed, but nothing was accepted either: the run measured nothing.
        var records = Enumerable.Range(0, 3).Select(_ => new RequestRecord { StartedS = 0, Throttled = 5, Outcome = RequestOutcome.ThrottledAtEnd, Reason = "throttled" }).ToList();
        var options = new LoadTestOptions { Target = new Uri("http://127.0.0.1:1/"), Users = 3, Duration = TimeSpan.FromSeconds(1) };

        var report = LoadReport.From(new LoadRunResult(options, "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(1), records));

        Assert.Equal((0, 0, 3), (report.Counts.Failed, report.Counts.Accepted, report.Counts.ThrottledAtEnd));
        Assert.Equal(1, LoadTestCommand.ExitCode(report));
        Assert.Contains("No submission was accepted", MarkdownReport.Render(report));
    }

    [Theory]
    [InlineData("light", 10)]
    [InlineData("medium", 50)]
    [InlineData("heavy", 100)]
    [InlineData("flood", 200)]
    public void Parse_Profile_IsTheOriginalRunsUserCount(string profile, int users)
    {
        var options = Parse("--target", "http://localhost:8080", "--profile", profile);

        Assert.Equal(users, options.Users);
        Assert.True(options.ClosedLoop);
        Assert.Equal(profile, options.Profile);
    }

    [Fact]
    public void Parse_RateInQueueMode_IsAnOpenLoopWithoutUsers()
    {
        var options = Parse("--queue", "--rate", "20", "--duration", "45", "--ramp", "5");

        Assert.True(options.Queue);
        Assert.Null(options.Target);
        Assert.False(options.ClosedLoop);
        Assert.Equal(0, options.Users);
        Assert.Equal(20, options.Rate);
        Assert.Equal(TimeSpan.FromSeconds(45), options.Duration);
        Assert.Equal(TimeSpan.FromSeconds(5), options.Ramp);
    }

    [Theory]
    [InlineData("give either --target URL or --queue")]
    [InlineData("give either --target URL or --queue", "--queue", "--target", "http://localhost:8080")]
    [InlineData("--target must be an http(s) URL", "--target", "ftp://localhost/")]
    [InlineData("--profile must be one of: light, medium, heavy, flood", "--target", "http://localhost:8080", "--profile", "huge")]
    [InlineData("--users and --rate exclude each other", "--target", "http://localhost:8080", "--users", "5", "--rate", "3")]
    [InlineData("give either --profile or --users/--rate", "--target", "http://localhost:8080", "--profile", "heavy", "--users", "5")]
    [InlineData("give either --profile or --users/--rate", "--target", "http://localhost:8080", "--profile", "flood", "--rate", "10")]
    [InlineData("--users must be an integer", "--target", "http://localhost:8080", "--users", "many")]
    [InlineData("--duration must be a number in [0.1,", "--target", "http://localhost:8080", "--duration", "0")]
    [InlineData("long poll must be 0 to 30 s", "--target", "http://localhost:8080", "--long-poll", "45")]
    [InlineData("192.0.2.10 is not this machine; pass --allow-remote", "--target", "http://192.0.2.10:8080")]
    [InlineData("--ramp must be shorter than --duration: users due to start after the duration never would", "--target", "http://localhost:8080", "--users", "50", "--duration", "10", "--ramp", "10")]
    [InlineData("--ramp must be shorter than --duration: the rate would never reach --rate", "--target", "http://localhost:8080", "--rate", "5", "--duration", "10", "--ramp", "20")]
    [InlineData("--rate 0.01 for 30 s sends no image", "--target", "http://localhost:8080", "--rate", "0.01", "--duration", "30")]
    [InlineData("--rate 0.1 for 14 s sends no image", "--target", "http://localhost:8080", "--rate", "0.1", "--duration", "14", "--ramp", "10")]
    [InlineData("--duration must be a number in [0.1, 604800]", "--target", "http://localhost:8080", "--duration", "5000000")]
    [InlineData("--drain must be a number in [0, 604800]", "--target", "http://localhost:8080", "--drain", "1e30")]
    [InlineData("--ramp must be a number in [0, 604800]", "--target", "http://localhost:8080", "--ramp", "5000000")]
    [InlineData("--long-poll must be a number in [0, 604800]", "--target", "http://localhost:8080", "--long-poll", "1e30")]
    [InlineData("--users must be an integer ≥ 1", "--target", "http://localhost:8080", "--users", "-3")]
    [InlineData("--users must be an integer ≥ 1", "--target", "http://localhost:8080", "--users", "0")]
    [InlineData("--rate must be a number ≥ 0.01", "--target", "http://localhost:8080", "--rate", "0")]
    public void Parse_BadArguments_RefusedNamingTheProblem(string expected, params string[] args)
    {
        var error = Assert.Throws<UsageException>(() => Parse(args));

        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData("give it with --cleanup alone", "--source", "loadtest-20261130-abc123")]
    [InlineData("give it with --cleanup alone", "--cleanup", "--source", "loadtest-20261130-abc123", "--target", "http://localhost:8080")]
    [InlineData("--source must be a load test's source (loadtest-…), not 'line-3'", "--cleanup", "--source", "line-3")]
    public void Run_CleanupOfAnEarlierRun_RefusesWhatItCannotDoSafely(string expected, params string[] args)
    {
        var command = new LoadTestCommand();

        var error = Assert.Throws<UsageException>(() => command.Run(new CommandArguments(args, command.ValueOptions, command.FlagOptions)));

        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("inmemory")]
    [InlineData("InMemory")]
    public void QueueMode_TransportNotRabbitMq_RefusedNamingTheSetting(string? transport)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(transport is null ? [] : [KeyValuePair.Create("Messaging:Transport", (string?)transport)]).Build();

        // The CLI's own in-memory bus has no worker: every message would be lost.
        var error = Assert.Throws<UsageException>(() => LoadTestCommand.RequireBroker(configuration));

        Assert.Contains("Messaging__Transport=rabbitmq", error.Message);
    }

    [Fact]
    public void QueueMode_RabbitMq_Accepted() =>
        LoadTestCommand.RequireBroker(new ConfigurationBuilder().AddInMemoryCollection([KeyValuePair.Create("Messaging:Transport", (string?)"rabbitmq")]).Build());

    [Fact]
    public void MissingEmbeddedDatabase_NamesTheFileOnlyWhenItIsNotThere()
    {
        static IConfiguration Settings(params (string Key, string Value)[] settings) =>
            new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value))).Build();
        var expected = Path.Combine(_directory, "wasteclassifier.db");

        Assert.Equal(expected, ServiceConfiguration.MissingEmbeddedDatabase(Settings(("DataDirectory", _directory))));
        File.WriteAllBytes(expected, []);
        Assert.Null(ServiceConfiguration.MissingEmbeddedDatabase(Settings(("DataDirectory", _directory))));
        Assert.Null(ServiceConfiguration.MissingEmbeddedDatabase(Settings(("DataDirectory", Path.Combine(_directory, "elsewhere")), ("Database:Provider", "postgres"))));
        Assert.Null(ServiceConfiguration.MissingEmbeddedDatabase(Settings(("DataDirectory", Path.Combine(_directory, "elsewhere")), ("Database:ConnectionString", "Data Source=x.db"))));
    }

    [Fact]
    public void Parse_RemoteTargetWithAllowRemote_Accepted() =>
        Assert.Equal("192.0.2.10", Parse("--target", "http://192.0.2.10:8080", "--allow-remote").Target!.Host);

    [Fact]
    public void CleanupOfAnEarlierRun_AlreadyRemoved_NothingToRemoveExitsZero()
    {
        // A retried cleanup step: the run is gone (removed by the first try), so there is nothing to do; it exited 1.
        Assert.Equal(0, new MigrateCommand().Run(new CommandArguments(["--data-directory", _directory], new MigrateCommand().ValueOptions, new MigrateCommand().FlagOptions)));
        Directory.CreateDirectory(Path.Combine(_directory, "objects", "waste-images"));
        var command = new LoadTestCommand();
        string[] args = ["--cleanup", "--source", "loadtest-20261130000000-gone00", "--data-directory", _directory];

        var original = Console.Error;
        using var log = new StringWriter();
        Console.SetError(log);
        int exit;
        try
        {
            exit = command.Run(new CommandArguments(args, command.ValueOptions, command.FlagOptions));
        }
        finally
        {
            Console.SetError(original);
        }

        Assert.Equal(0, exit);
        // A mistyped source, or another database, finds nothing too: the log says what was searched for, and where.
        Assert.Contains($"source loadtest-20261130000000-gone00 in the database {Path.Combine(_directory, "wasteclassifier.db")}", log.ToString());
    }

    [Fact]
    public void Dispatch_UsageError_TheMessageAndOneLinePointingAtTheHelp()
    {
        var original = Console.Error;
        using var error = new StringWriter();
        Console.SetError(error);
        int exit;
        try
        {
            exit = CommandDispatcher.Run([new LoadTestCommand()], ["loadtest", "--target", "http://localhost:8080", "--users", "-3"]);
        }
        finally
        {
            Console.SetError(original);
        }

        // The whole help (35 lines) followed the message.
        Assert.Equal(CommandDispatcher.UsageError, exit);
        Assert.Equal("wastectl: --users must be an integer ≥ 1\nsee wastectl loadtest --help", error.ToString().Trim().ReplaceLineEndings("\n"));
    }

    [Fact]
    public void Dispatch_TargetDown_ExitTwoWithoutTheHelpLine()
    {
        // Nothing wrong with the arguments: "see wastectl loadtest --help" followed "target not answering…".
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var original = Console.Error;
        using var error = new StringWriter();
        Console.SetError(error);
        int exit;
        try
        {
            exit = CommandDispatcher.Run([new LoadTestCommand()], ["loadtest", "--target", $"http://127.0.0.1:{port}", "--users", "1", "--duration", "1",
                "--generate", "1", "--size", "64x48", "--out", Path.Combine(_directory, "out")]);
        }
        finally
        {
            Console.SetError(original);
        }

        Assert.Equal(CommandDispatcher.UsageError, exit);
        Assert.StartsWith($"wastectl: target not answering at http://127.0.0.1:{port}/", error.ToString());
        Assert.DoesNotContain("--help", error.ToString());
    }

    private static LoadTestOptions Parse(params string[] args)
    {
        var command = new LoadTestCommand();
        return LoadTestArguments.Parse(new CommandArguments(args, command.ValueOptions, command.FlagOptions));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
