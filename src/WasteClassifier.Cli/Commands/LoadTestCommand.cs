using System.Data.Common;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Api.Security;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.LoadTesting;
using WasteClassifier.LoadTesting.Http;
using WasteClassifier.LoadTesting.Images;
using WasteClassifier.LoadTesting.Reporting;
using WasteClassifier.LoadTesting.Targets;

namespace WasteClassifier.Cli.Commands;

/// <summary>Drives the API (or the classify queue) with a known load and writes report.json, report.md and report.html.</summary>
public sealed class LoadTestCommand : ICommand
{
    public string Name => "loadtest";

    public string Summary => "load the API or the classify queue; reports counts, throughput and latency";

    public string Usage => """
        wastectl loadtest (--target URL | --queue) [--profile NAME | --users N | --rate R] [options]
        wastectl loadtest --cleanup --source loadtest-…   remove an earlier run afterwards (the source its report names)

          --target URL        the API, e.g. http://localhost:8080 (loopback only unless --allow-remote)
          --queue             send ClassifyImage straight to the classify queue for images stored first
                              (uses the services' configuration: Database__*, ObjectStore__*, Messaging__*;
                              RabbitMQ only, Messaging__Transport=rabbitmq)
          --profile NAME      light, medium, heavy (10/50/100 users, as the original Locust runs) or flood (200)
          --users N           closed loop: N users, each waiting for its result before the next image
          --rate R            open loop: R images per second whatever the answers
          --duration S        seconds of submitting (default 30); --ramp S (shorter) to start users/rate gradually
          --drain S           seconds to wait for outstanding results afterwards (default 60)
                              (duration, ramp and drain: at most a week each)
          --max-requests N    never submit more than N images (default 100000)
          --images DIR        send the .jpg/.png files under DIR (at most --image-limit, default 200)
          --generate N        send N generated JPEGs (default 32) of --size WxH (default 640x480)
          --long-poll S       each poll asks the API to hold it up to S s until the result is there
                              (default 20, at most 30); 0 polls on --poll-ms instead
          --poll-ms N         without long polling: first poll after N ms, backing off to 1 s (default 100)
          --repeat-images     send the images' bytes unchanged; by default each upload (HTTP mode) or each image of
                              the run (queue mode) carries a unique comment (pixels unchanged), so it is new content,
                              as camera frames are
          --no-ready-check    load the target even when GET /health/ready answers 503 (a deliberate outage test);
                              by default such a target is refused before the load, with its answer
          --out DIR           report folder (default loadtest-<time>), created and checked before the load
          --cleanup           delete the run's classifications, and images only it created, afterwards (also after
                              Ctrl+C); reaches the database and object store directly, configured as for --queue,
                              and checks before the load that they hold the service's data
          --data-directory DIR  the embedded default's data folder (when not set in the environment), for --queue
                              and --cleanup: `dotnet run --project src/WasteClassifier.Api` keeps it in src/WasteClassifier.Api/data
          --api-key KEY       sent as X-Api-Key on submissions and polls (default: the WASTECTL_API_KEY environment
                              variable); needed where classification requires a key; never written to the report.
                              Prefer the variable or --api-key-file: an option's value shows in the process list
          --api-key-file PATH the key is the file's first line (trimmed); instead of --api-key
          --allow-remote      permit a target (or, with --queue or --cleanup, servers) that is not this machine
        Ctrl+C (or SIGTERM) ends the run early and still writes the report, and --cleanup still follows; the first one
        after the run ended skips the cleanup, or stops it, and says what it left (remove that later with --cleanup --source);
        it ends nothing else (a run not already interrupted is reported complete, with its own exit code).
        A run whose every image the target refused (a 4xx answer but 408/429: not an image, too large, no key, …) at least
        10 times in all before accepting any stops sending then, and says so, naming the refusals (exit code 1).
        Exit code 0 when every request completed; 1 when any request failed or never finished, nothing was accepted, or
        --cleanup did not finish; 130 (Ctrl+C) or 143 (SIGTERM) when a signal ended the run early: its report holds what
        was measured until then (the cleanup not finishing still exits 1).
        """;

    public IReadOnlySet<string> ValueOptions { get; } = new HashSet<string>
    {
        "--target", "--profile", "--users", "--rate", "--duration", "--ramp", "--drain", "--max-requests",
        "--images", "--image-limit", "--generate", "--size", "--long-poll", "--poll-ms", "--out", "--source", "--data-directory",
        "--api-key", ApiKeyOption.FileOption,
    };

    public IReadOnlySet<string> FlagOptions { get; } = new HashSet<string> { "--queue", "--cleanup", "--allow-remote", "--repeat-images", "--no-ready-check" };

    public int Run(CommandArguments arguments) => RunAsync(arguments).GetAwaiter().GetResult();

    /// <summary>How long the target has to answer its readiness probe before the load.</summary>
    internal static readonly TimeSpan TargetCheckTimeout = TimeSpan.FromSeconds(5);

    private static async Task<int> RunAsync(CommandArguments arguments)
    {
        if (arguments.Optional("--source") is { } earlierRun) return await CleanUpEarlierRunAsync(arguments, earlierRun);
        var options = LoadTestArguments.Parse(arguments);
        var apiKey = ApiKeyOption.Resolve(arguments);
        var images = LoadTestArguments.Images(arguments);
        if ((options.StampsUploads || options.StampsRunImages) && images.FirstUnstampable() is { } unstampable)
            // Not "pass --repeat-images": sent unchanged, a file that is no image was refused 400 not_an_image thousands of times.
            throw new UsageException($"{unstampable.FileName} is not a JPEG or PNG, so it cannot be made new content: remove it from the image folder");
        var cleanup = arguments.Flag("--cleanup");
        var configuration = Configuration(arguments);
        if (options.Queue) RequireBroker(configuration);
        // Queue mode and the cleanup reach the deployment's servers directly: they must be this machine's too.
        if (options.Queue || cleanup) ServiceConfiguration.CheckDatabase(configuration);
        if ((options.Queue || cleanup) && !options.AllowRemote) EnsureLocalServers(configuration, usesBus: options.Queue);
        // Queue mode stores its images in the deployment's database; a missing embedded one is the wrong folder, not a new deployment.
        if (options.Queue || cleanup) ServiceConfiguration.RequireExistingDatabase(configuration);
        // Found after the load, a cleanup that cannot reach the service's data left the whole run behind.
        if (cleanup) await CheckCleanupReachableAsync(configuration);
        var output = Path.GetFullPath(arguments.Optional("--out") ?? $"loadtest-{DateTime.Now:yyyyMMdd-HHmmss}");
        var outputCreated = PrepareOutput(output);
        // A target that is down is said so in seconds, rather than measured as a run of connection failures.
        if (!options.Queue && !arguments.Flag("--no-ready-check") && await HttpLoadTarget.CheckAnsweringAsync(options.Target!, TargetCheckTimeout) is { } notAnswering)
        {
            RemoveIfEmpty(outputCreated);
            throw new UnavailableException(notAnswering);
        }
        var runStarted = DateTime.UtcNow;
        Log.Info($"{(options.Queue ? "queue" : options.Target!.ToString())}: {(options.ClosedLoop ? $"{options.Users} users" : $"{options.Rate} images/s")} for {options.Duration.TotalSeconds} s, {images.All.Count} distinct images, source {options.Source}");

        // Ctrl+C and SIGTERM: the first ends the run early, the first once it has ended skips or stops the cleanup (RunSignals).
        using var signals = new RunSignals(cleanup, Log.Info);
        ConsoleCancelEventHandler onCancel = (_, e) => e.Cancel = signals.OnSignal(PosixSignal.SIGINT);
        Console.CancelKeyPress += onCancel;
        var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => context.Cancel = signals.OnSignal(PosixSignal.SIGTERM));
        LoadReport? report = null;
        IReadOnlyList<Guid> storedImages = [];
        var cleanedUp = true;
        try
        {
            await using ILoadTarget target = options.Queue
                ? new QueueLoadTarget(DeploymentServices.Build(configuration, withBus: true), options.Source, options.PollInterval)
                : new HttpLoadTarget(WastectlHttp.CreateClient(options.Target!, options.RequestTimeout), options.Source, options.LongPoll, apiKey);
            LoadRunResult? result = null;
            try
            {
                result = await new LoadRunner(target, images, options, Log.Info).RunAsync(signals.StopRun);
            }
            catch (OperationCanceledException) when (signals.StopRun.IsCancellationRequested)
            {
                Log.Info("interrupted before the load started");
            }
            catch (TargetUnavailableException e)
            {
                throw new UnavailableException(e.Message);
            }
            finally
            {
                // Before the report is computed: a signal from here on ends nothing, the run being over.
                signals.RunEnded(result);
                if (target is QueueLoadTarget queue) storedImages = queue.PreparedImageIds;
            }
            if (result is not null) report = LoadReport.From(result);
            if (cleanup) Log.Info("run ended: writing the report, then the cleanup (Ctrl+C or SIGTERM now skips it)");
            // Written before the cleanup (a signal during it must not lose the report): the report says one follows.
            if (report is not null && cleanup) report = report with { Run = report.Run with { CleanupFollows = true } };
            if (report is not null) Log.Info($"report: {string.Join(", ", ReportFiles.Write(report, output))}");
            if (report?.Run.RefusedEverything is { } refusals)
                Log.Info($"stopped early: {refusals}; check the images (--images), the API key (WASTECTL_API_KEY, --api-key-file) and --target");
        }
        finally
        {
            if (report is null) RemoveIfEmpty(outputCreated);
            try
            {
                // Also after a failed or interrupted run: whatever it stored is removed when asked. The signal handlers stay
                // until it is done: without them a SIGTERM during it ended the process midway.
                if (cleanup)
                {
                    signals.CleanupStarts();
                    if (signals.StopCleanup.IsCancellationRequested)
                    {
                        Log.Info($"cleanup skipped; remove the run with --cleanup --source {options.Source}");
                        cleanedUp = false;
                    }
                    else
                    {
                        Log.Info($"cleanup: removing the run's classifications and images (source {options.Source})");
                        cleanedUp = await CleanUpAsync(configuration, options.Source, runStarted, storedImages, report?.Counts.Accepted ?? 0, signals.StopCleanup);
                    }
                }
            }
            finally
            {
                Console.CancelKeyPress -= onCancel;
                onTerminate.Dispose();
            }
        }
        // Ended before the load started: no report, but the signal is still what ended it.
        if (report is null) return signals.EndedBy is { } signal && cleanedUp ? InterruptedExitCode(signal) : 1;
        Console.Out.WriteLine(JsonSerializer.Serialize(new { report = output, report.Counts, report.Throughput, report.LatencyMs }, ReportFiles.Json));
        return ExitCode(report, cleanedUp, signals.EndedBy);
    }

    /// <summary>Exit codes of a run a signal ended early: 128 + the signal's number, as a shell reports a process it ended.</summary>
    public const int InterruptedBySigint = 130, InterruptedBySigterm = 143;

    internal static int InterruptedExitCode(PosixSignal signal) => signal == PosixSignal.SIGTERM ? InterruptedBySigterm : InterruptedBySigint;

    /// <summary>
    /// 1 when the cleanup did not finish: what it left is as much a failure as a failed request, and a gate on the exit code
    /// must not pass it by. Otherwise, for a run a signal ended early (the report interrupted, by <paramref name="endedBy"/>),
    /// 130 (SIGINT, Ctrl+C) or 143 (SIGTERM): no failure of the tool, whose report holds what the run measured until then,
    /// but no finished run either, so no gate takes it for one. Otherwise 1 when a request failed (or never finished) or
    /// nothing was accepted at all, else 0. Submissions throttled at its end are no failure, but a target that answered
    /// every one 429/503 (an API whose database is down, an ingress with no ready pod) measured nothing: that run must not
    /// pass a gate on the exit code.
    /// </summary>
    internal static int ExitCode(LoadReport report, bool cleanedUp = true, PosixSignal? endedBy = null)
    {
        if (!cleanedUp) return 1;
        if (report.Run.Interrupted) return InterruptedExitCode(endedBy ?? PosixSignal.SIGINT);
        return report.Counts.Failed == 0 && (report.Counts.Accepted > 0 || report.Counts.ThrottledAtEnd == 0) ? 0 : 1;
    }

    /// <summary>
    /// Queue mode sends to the workers' RabbitMQ. With the in-memory transport (the embedded default) its bus would be this
    /// process's own, which no worker reads: every message would be lost and every request unfinished.
    /// </summary>
    internal static void RequireBroker(IConfiguration configuration)
    {
        var transport = (configuration.GetSection(MessagingOptions.Section).Get<MessagingOptions>() ?? new MessagingOptions()).Transport;
        if (!string.Equals(transport, MessagingTransports.RabbitMq, StringComparison.OrdinalIgnoreCase))
            throw new UsageException($"--queue sends to the workers' broker: set Messaging__Transport=rabbitmq and Messaging__RabbitMq__* as the workers' " +
                                     $"(the transport here is '{transport}', a bus inside this process that no worker reads); load the embedded default with --target");
    }

    /// <summary>The report folder, created and written to before the load: a bad --out found after the run lost its report.</summary>
    /// <returns>The folders this created: the report folder and the parents it lacked, innermost first.</returns>
    internal static IReadOnlyList<string> PrepareOutput(string folder)
    {
        var created = new List<string>();
        for (var missing = folder; !string.IsNullOrEmpty(missing) && !Path.Exists(missing); missing = Path.GetDirectoryName(missing)) created.Add(missing);
        try
        {
            Directory.CreateDirectory(folder);
            using (File.Create(Path.Combine(folder, $".write-check-{Guid.NewGuid():N}"), 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            RemoveIfEmpty(created);
            throw new UsageException($"--out {folder} cannot hold the report: {e.Message}");
        }
        return created;
    }

    /// <summary>
    /// Folders this run created and never wrote to (it failed or was stopped before its load) are not left behind: the
    /// report folder, then each parent it created (--out a/b/c left a/b), while empty; no folder that was already there.
    /// </summary>
    internal static void RemoveIfEmpty(IReadOnlyList<string> createdInnermostFirst)
    {
        try
        {
            foreach (var folder in createdInnermostFirst)
            {
                if (!Directory.Exists(folder)) continue;
                if (Directory.EnumerateFileSystemEntries(folder).Any()) return;
                Directory.Delete(folder);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Only tidying.
        }
    }

    private static void EnsureLocalServers(IConfiguration configuration, bool usesBus)
    {
        try
        {
            TargetGuard.EnsureLocalDeployment(configuration, usesBus);
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
    }

    private static async Task<int> CleanUpEarlierRunAsync(CommandArguments arguments, string source)
    {
        if (!arguments.Flag("--cleanup") || arguments.Flag("--queue") || arguments.Optional("--target") is not null)
            throw new UsageException("--source names an earlier run to remove: give it with --cleanup alone (no --target or --queue)");
        if (!source.StartsWith(RunCleanup.SourcePrefix, StringComparison.Ordinal))
            throw new UsageException($"--source must be a load test's source ({RunCleanup.SourcePrefix}…), not '{source}'");
        var configuration = Configuration(arguments);
        ServiceConfiguration.CheckDatabase(configuration);
        if (!arguments.Flag("--allow-remote")) EnsureLocalServers(configuration, usesBus: false);
        ServiceConfiguration.RequireExistingDatabase(configuration);
        await using var services = DeploymentServices.BuildForCleanup(configuration);
        if (await RunCleanup.RemoveEarlierRunAsync(services, source, CancellationToken.None) is not { } removed)
        {
            // Already removed (a retried cleanup step), or never there: either way nothing is left, which a retry must be able to say.
            // Exit 0 either way, so the log names what was searched: a mistyped source or another database finds nothing too.
            Log.Info($"cleanup: nothing to remove: no classification or stored image carries source {source} in the database {DatabaseName(services)}; " +
                     "if the run is still there, check the source (its report's run.source) and --data-directory or Database__* (as the API's)");
            return 0;
        }
        LogRemoved(removed, source);
        return removed.ImagesLeft == 0 ? 0 : 1;
    }

    /// <summary>The services' configuration, with --data-directory as <c>wastectl models import</c> takes it.</summary>
    private static IConfiguration Configuration(CommandArguments arguments) =>
        ServiceConfiguration.Build(new Dictionary<string, string?> { ["DataDirectory"] = arguments.Optional("--data-directory") });

    /// <summary>
    /// The cleanup's database and object store, before the load: the database must answer and hold the service's tables
    /// (an empty or foreign one is the wrong configuration), and the store be there (the folder store's folder exists, the
    /// bucket answers). A usage error naming what was tried and how to point at the service's data.
    /// </summary>
    internal static async Task CheckCleanupReachableAsync(IConfiguration configuration)
    {
        const string howToFix = "point the cleanup at the service's data: --data-directory (or DataDirectory) as the API's " +
                                "(`dotnet run --project src/WasteClassifier.Api` keeps it in src/WasteClassifier.Api/data), or Database__* and ObjectStore__* as the API's";
        // About a cleanup's worst case against a database that does not answer (three connects of 3 s): never a hang.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var services = DeploymentServices.BuildForCleanup(configuration);
        await using (var scope = services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            var database = DatabaseName(db);
            bool holdsTables;
            try
            {
                holdsTables = (await db.Database.GetAppliedMigrationsAsync(timeout.Token)).Any();
            }
            catch (Exception e) when (e is DbException or InvalidOperationException or OperationCanceledException || DependencyFailures.IsUnavailable(e))
            {
                throw new UsageException($"--cleanup cannot reach the database {database} ({e.Message}{(e.InnerException is { } inner ? $": {inner.Message}" : "")}); {howToFix}");
            }
            if (!holdsTables) throw new UsageException($"--cleanup's database {database} holds none of the service's tables; {howToFix}");
        }
        var store = services.GetRequiredService<IObjectStore>();
        try
        {
            await store.CheckAsync(timeout.Token);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or OperationCanceledException || DependencyFailures.IsUnavailable(e))
        {
            throw new UsageException($"--cleanup cannot use the object store ({e.Message}); {howToFix}");
        }
    }

    /// <summary>The database as a message names it: the SQLite file, or the server and database.</summary>
    private static string DatabaseName(ClassifierDbContext db)
    {
        var connection = db.Database.GetDbConnection();
        return db.Database.IsSqlite() ? connection.DataSource : $"{connection.DataSource}/{connection.Database}";
    }

    private static string DatabaseName(IServiceProvider services)
    {
        using var scope = services.CreateScope();
        return DatabaseName(scope.ServiceProvider.GetRequiredService<ClassifierDbContext>());
    }

    /// <summary>What the cleanup removed, and what it kept: images labelled samples use, and those the object store failed to delete.</summary>
    private static void LogRemoved(RunCleanup.Removed removed, string source)
    {
        Log.Info($"cleanup: removed {removed.Classifications} classification(s) and {removed.Images} image(s)");
        if (removed.ImagesKeptForSamples > 0)
            Log.Info($"cleanup: kept {removed.ImagesKeptForSamples} image(s) of the run, and their objects, that labelled samples use");
        if (removed.ImagesLeft > 0)
            Log.Info($"cleanup: kept {removed.ImagesLeft} image(s), and their classifications, whose objects could not be deleted ({removed.Failure}); " +
                     $"run --cleanup --source {source} again to finish");
    }

    /// <returns>Whether the cleanup ran to its end, having removed all it could find (false: it says what it left).</returns>
    internal static async Task<bool> CleanUpAsync(IConfiguration configuration, string source, DateTime runStarted, IReadOnlyList<Guid> storedImages, int accepted,
        CancellationToken cancellationToken = default)
    {
        if (ServiceConfiguration.MissingEmbeddedDatabase(configuration) is { } sqliteFile)
        {
            Log.Info($"cleanup: no database at {sqliteFile}; set DataDirectory to the API's (`dotnet run --project src/WasteClassifier.Api` " +
                     $"keeps it in src/WasteClassifier.Api/data) or Database__* as the API's. Then remove the run with --cleanup --source {source}");
            return false;
        }
        try
        {
            await using var services = DeploymentServices.BuildForCleanup(configuration);
            var removed = await RunCleanup.RemoveAsync(services, source, runStarted, cancellationToken, storedImages);
            LogRemoved(removed, source);
            // A database that answers but is not the target's (another deployment's, a fresh one) removes nothing: the run's rows
            // are all still there, so the cleanup did not finish.
            var wrongDatabase = accepted > 0 && removed.Classifications == 0;
            if (wrongDatabase)
                Log.Info($"cleanup: none of the run's {accepted} classification(s) are in the database configured here; set the target's Database__* and ObjectStore__* " +
                         $"(or --data-directory) and remove the run with --cleanup --source {source}");
            return removed.ImagesLeft == 0 && !wrongDatabase;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Objects go before rows, and the rows in one transaction: whatever is left is still found by its source.
            Log.Info($"cleanup stopped before it ended; remove what it left with --cleanup --source {source}");
            return false;
        }
        // Also a database or object store out of reach: PostgreSQL's retrying strategy ends in RetryLimitExceededException,
        // which is no DbException, and a store's failure is an HTTP or Minio error.
        catch (Exception e) when (e is DbException or InvalidOperationException or IOException || DependencyFailures.IsUnavailable(e))
        {
            // The report is written by now; say what was left, and where, rather than fail without it.
            Log.Info($"cleanup failed ({e.Message}{(e.InnerException is { } inner ? $": {inner.Message}" : "")}); remove the run later with --cleanup --source {source}");
            return false;
        }
    }
}

/// <summary>Turns loadtest's options into <see cref="LoadTestOptions"/> and an <see cref="ImageSet"/>.</summary>
internal static class LoadTestArguments
{
    public static LoadTestOptions Parse(CommandArguments arguments)
    {
        var queue = arguments.Flag("--queue");
        var target = arguments.Optional("--target");
        if (queue == (target is not null)) throw new UsageException("give either --target URL or --queue");
        Uri? uri = null;
        if (target is not null && (!Uri.TryCreate(target.EndsWith('/') ? target : target + "/", UriKind.Absolute, out uri) || uri.Scheme is not ("http" or "https")))
            throw new UsageException($"--target must be an http(s) URL, not '{target}'");

        var profile = arguments.Optional("--profile");
        if (profile is not null && !LoadProfiles.Users.ContainsKey(profile))
            throw new UsageException($"--profile must be one of: {string.Join(", ", LoadProfiles.Users.Keys)}");
        if (profile is not null && (arguments.Optional("--users") ?? arguments.Optional("--rate")) is not null)
            throw new UsageException("--profile sets the number of users: give either --profile or --users/--rate");
        var rate = arguments.Float("--rate", 0, min: 0.01f);
        // At least one when given: "≥ 0" was said, and then 0 refused.
        var users = arguments.Int("--users", profile is null ? (rate > 0 ? 0 : 10) : LoadProfiles.Users[profile], min: 1);
        if (rate > 0 && arguments.Optional("--users") is not null) throw new UsageException("--users and --rate exclude each other");

        var options = new LoadTestOptions
        {
            Target = uri,
            Queue = queue,
            Profile = profile,
            Users = rate > 0 ? 0 : users,
            Rate = rate,
            Duration = Seconds(arguments, "--duration", 30),
            Ramp = Seconds(arguments, "--ramp", 0),
            Drain = Seconds(arguments, "--drain", 60),
            MaxRequests = arguments.Int("--max-requests", 100_000),
            PollInterval = TimeSpan.FromMilliseconds(arguments.Int("--poll-ms", 100)),
            LongPoll = Seconds(arguments, "--long-poll", 20),
            AllowRemote = arguments.Flag("--allow-remote"),
            UniqueUploads = !arguments.Flag("--repeat-images"),
        };
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        // Runs that could not go as asked: users due to start after the duration never do (the report would still name
        // them all), a rate never reaches its value, or not one image is due.
        if (options.Ramp > TimeSpan.Zero && options.Ramp >= options.Duration)
            throw new UsageException($"--ramp must be shorter than --duration: {(options.ClosedLoop ? "users due to start after the duration never would" : "the rate would never reach --rate")}");
        if (!options.ClosedLoop && LoadRunner.Arrivals(options.Duration.TotalSeconds, options.Rate, options.Ramp.TotalSeconds) < 1)
            throw new UsageException($"--rate {rate.ToString(CultureInfo.InvariantCulture)} for {options.Duration.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s sends no image: rate × duration must come to at least one");
        return options;
    }

    public static ImageSet Images(CommandArguments arguments)
    {
        if (arguments.Optional("--images") is { } folder)
            return ImageSet.FromFolder(CommandArguments.ExistingDirectory(folder, "image folder"), arguments.Int("--image-limit", 200));
        var size = (arguments.Optional("--size") ?? "640x480").Split('x');
        if (size.Length != 2 || !int.TryParse(size[0], CultureInfo.InvariantCulture, out var width) || !int.TryParse(size[1], CultureInfo.InvariantCulture, out var height) || width < 8 || height < 8)
            throw new UsageException("--size must be WIDTHxHEIGHT, e.g. 1920x1080");
        return ImageSet.Generated(arguments.Int("--generate", 32), width, height);
    }

    // Bounded: a larger value overflowed TimeSpan or the run's timers, with a stack trace.
    private static TimeSpan Seconds(CommandArguments arguments, string name, float fallback) =>
        TimeSpan.FromSeconds(arguments.Float(name, fallback, min: name == "--duration" ? 0.1f : 0, max: (float)LoadTestOptions.MaxSpan.TotalSeconds));
}
