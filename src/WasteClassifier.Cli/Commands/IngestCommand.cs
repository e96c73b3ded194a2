using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Runtime.InteropServices;
using WasteClassifier.Cli.Ingest;
using WasteClassifier.Core;

namespace WasteClassifier.Cli.Commands;

/// <summary>Uploads a camera folder's images (existing and arriving) or a set of files to the API; resumable.</summary>
public sealed class IngestCommand : ICommand
{
    public string Name => "ingest";

    public string Summary => "upload a camera folder (watched) or files to the API; resumes without resending";

    public string Usage => $"""
        wastectl ingest --target URL --source NAME (--watch DIR | FILES/GLOBS...) [options]

          --target URL        the API, e.g. http://sorter:8080
          --source NAME       camera or line id recorded on every classification, as the API takes it:
                              {SourceName.Rule}
          --watch DIR         send DIR's files, then keep watching it for new ones (Ctrl+C to stop)
          FILES/GLOBS         files, folders or globs ('*', '?', '**'); sent once
          --once              with --watch: exit after the files that exist at start
          --recursive         include subfolders (without it, skipped subfolders are warned about)
          --state FILE        resume state (default DIR/.wastectl-ingest-<source>.jsonl; for files
                              ~/.local/state/wastectl/ingest-<source>-<hash>.jsonl)
          --concurrency N     requests in flight (default 4)
          --batch N           files per request (default 16)
          --settle-ms N       a file is sent once its size has not changed for N ms (default 1000) and, for a
                              JPEG or PNG, its end marker is written; one still cut short 10 x N ms (at least
                              10 s) after it last changed is recorded as failed (a JPEG as truncated_image, as
                              the API refuses it; else incomplete_file), as is one still empty (empty_file)
          --rescan S          with --watch: rescan the folder every S seconds (default 10)
          --max-attempts N    tries per request on network errors, 5xx, 408 and 429 (default 8)
          --timeout S         seconds to wait for one answer (default 100)
          --delete-after      delete each file once the API accepted it
          --archive DIR       move each accepted file into DIR instead
          --failed-dir DIR    move each file refused for good into DIR (its path under the watched folder kept, a
                              -1, -2 … suffix where the name is taken), with NAME.error.json beside it: status,
                              error, message, time. Refused for good: the API's per-file refusals (not_an_image,
                              truncated_image, file_too_large, …), a file over the request limit alone
                              (request_too_large). Never files wastectl refuses unsent (empty_file, incomplete_file,
                              truncated_image: a writer may still hold them), nor 401/403, 408, 429 or 5xx.
                              DIR (as --archive DIR) must not be or hold the watched folder or the files given,
                              and neither may lie in the other
          --api-key KEY       sent as X-Api-Key (default: the WASTECTL_API_KEY environment variable); prefer the
                              variable or --api-key-file: an option's value shows in the process list
          --api-key-file PATH the key is the file's first line (trimmed); instead of --api-key
        Hidden files and partial names (.tmp, .part, .partial, .filepart, .crdownload, .swp) are skipped. Files the API refuses are
        recorded as failed with the reason and not sent again. A file that cannot be read (locked, permissions, an
        I/O error) is not recorded: watching, it is tried again with a growing pause (30 s at most); in a single
        pass it is reported as unreadable and the next run tries it again. Exit code 1 when stopped by an error or
        when files were left unsent or unreadable (run it again to resume).
        """;

    public IReadOnlySet<string> ValueOptions { get; } = new HashSet<string>
    {
        "--target", "--source", "--watch", "--state", "--concurrency", "--batch", "--settle-ms", "--rescan",
        "--max-attempts", "--timeout", "--archive", "--failed-dir", "--api-key", ApiKeyOption.FileOption,
    };

    public IReadOnlySet<string> FlagOptions { get; } = new HashSet<string> { "--once", "--recursive", "--delete-after" };

    public bool TakesPaths => true;

    public int Run(CommandArguments arguments)
    {
        var target = arguments.Required("--target");
        if (!Uri.TryCreate(target.EndsWith('/') ? target : target + "/", UriKind.Absolute, out var baseAddress) || baseAddress.Scheme is not ("http" or "https"))
            throw new UsageException($"--target must be an http(s) URL, e.g. http://localhost:8080 (got '{target}')");
        var options = Parse(arguments);

        using var http = IngestClient.CreateHttp(baseAddress, options, ApiKeyOption.Resolve(arguments));

        using var stop = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            // First Ctrl+C stops cleanly (the summary is still printed); a second one kills the process.
            e.Cancel = !stop.IsCancellationRequested;
            stop.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        // SIGTERM (systemd, docker stop, kill) stops as Ctrl+C does: a batch in flight stays recorded for the next run to
        // resend under its key, and the summary and JSON line are printed; the runtime's default ended the process at once.
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = !stop.IsCancellationRequested;
            stop.Cancel();
        });
        try
        {
            Log.Info($"ingesting {(options.WatchDirectory is null ? $"{options.Paths.Count} path(s)" : options.WatchDirectory)} as source {options.Source} into {baseAddress} (state {options.StateFile})");
            var summary = new Ingester(options, http, Log.Info).RunAsync(stop.Token).GetAwaiter().GetResult();
            Log.Info($"done: {summary.Sent} sent, {summary.Refused} refused, {summary.Skipped} already sent, {summary.Deferred} left unsent, {summary.Unreadable.Count} unreadable, " +
                     $"{summary.Retries} retries in {summary.Elapsed.TotalSeconds:0.0} s ({summary.Rate:0.0} files/s)");
            foreach (var failure in summary.Failures) Log.Info($"refused {failure.Path}: {failure.Error}: {failure.Message}");
            foreach (var failure in summary.Unreadable) Log.Info($"not sent {failure.Path}: {failure.Error}: {failure.Message} (the next run tries again)");
            if (summary.FatalError is not null) Log.Info($"stopped: {summary.FatalError}");
            Console.Out.WriteLine(JsonSerializer.Serialize(new
            {
                sent = summary.Sent,
                refused = summary.Refused,
                already_sent = summary.Skipped,
                left_unsent = summary.Deferred,
                unreadable = summary.Unreadable.Count,
                retries = summary.Retries,
                elapsed_seconds = Math.Round(summary.Elapsed.TotalSeconds, 1),
                files_per_second = Math.Round(summary.Rate, 2),
                error = summary.FatalError,
                failures = summary.Failures.Select(f => new { path = f.Path, error = f.Error, message = f.Message }),
                unreadable_files = summary.Unreadable.Select(f => new { path = f.Path, error = f.Error, message = f.Message }),
            }));
            return ExitCode(summary);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>1 unless every file found was answered: stopped by an error, or files left unsent or unreadable.</summary>
    public static int ExitCode(Ingester.Summary summary) =>
        summary.FatalError is null && summary.Deferred == 0 && summary.Unreadable.Count == 0 ? 0 : 1;

    // XDG state folder: never the current directory (which may be a repository or a read-only share).
    private static string StateHome() =>
        Path.Combine(Environment.GetEnvironmentVariable("XDG_STATE_HOME") is { Length: > 0 } xdg ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state"), "wastectl");

    /// <summary>Whether <paramref name="path"/> is <paramref name="folder"/> or lies in it (both full paths, compared as written).</summary>
    private static bool Within(string path, string folder)
    {
        (path, folder) = (Path.TrimEndingDirectorySeparator(path), Path.TrimEndingDirectorySeparator(folder));
        // The root keeps its separator when trimmed.
        var prefix = Path.EndsInDirectorySeparator(folder) ? folder : folder + Path.DirectorySeparatorChar;
        return path == folder || path.StartsWith(prefix, StringComparison.Ordinal);
    }

    public static IngestOptions Parse(CommandArguments arguments)
    {
        var source = arguments.Required("--source");
        // The API refuses any other name (400 invalid_source) at the first request; say so before anything starts.
        if (!SourceName.IsValid(source)) throw new UsageException($"--source must be {SourceName.Rule} (got '{source}')");
        var watch = arguments.Optional("--watch");
        if (watch is null && arguments.Paths.Count == 0) throw new UsageException("give --watch DIR or files/globs to send");
        if (watch is not null && arguments.Paths.Count > 0) throw new UsageException("give either --watch DIR or files/globs, not both");
        if (arguments.Flag("--delete-after") && arguments.Optional("--archive") is not null) throw new UsageException("give --delete-after or --archive, not both");
        var archive = arguments.Optional("--archive") is { } a ? Path.GetFullPath(a) : null;
        var failed = arguments.Optional("--failed-dir") is { } f ? Path.GetFullPath(f) : null;
        // One folder for both, or one inside the other, would mix what was classified with what was not.
        if (failed is not null && archive is not null && (Within(failed, archive) || Within(archive, failed)))
            throw new UsageException("--failed-dir and --archive must be different folders, neither inside the other");
        var directory = watch is null ? null : CommandArguments.ExistingDirectory(watch, "--watch folder");
        // Discovery skips what lies in either folder (the files moved there): files to send there would all be skipped, unsent
        // and unsaid. Inside the watched folder is fine: the rest of it is still sent.
        foreach (var (option, folder) in new[] { ("--failed-dir", failed), ("--archive", archive) })
        {
            if (folder is null) continue;
            if (directory is not null && Within(directory, folder))
                throw new UsageException($"{option} must not be the watched folder or a folder above it (its files would all be skipped)");
            if (arguments.Paths.FirstOrDefault(p => Within(Path.GetFullPath(FileDiscovery.Root(p)), folder)) is { } inside)
                throw new UsageException($"{option} must not hold the files to send ('{inside}' is in {folder}: its files would all be skipped)");
        }
        var safeSource = string.Concat(source.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
        // Paths mode: one state file per source and set of arguments, so unrelated runs from one folder do not mix.
        var defaultState = directory is not null
            ? Path.Combine(directory, $".wastectl-ingest-{safeSource}.jsonl")
            : Path.Combine(StateHome(), $"ingest-{safeSource}-{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Environment.CurrentDirectory + "\n" + string.Join('\n', arguments.Paths))))[..8]}.jsonl");
        return new IngestOptions
        {
            Source = source,
            WatchDirectory = directory,
            Paths = arguments.Paths,
            Once = arguments.Flag("--once") || directory is null,
            Recursive = arguments.Flag("--recursive"),
            StateFile = Path.GetFullPath(arguments.Optional("--state") ?? defaultState),
            Concurrency = arguments.Int("--concurrency", 4),
            BatchSize = arguments.Int("--batch", 16),
            Settle = TimeSpan.FromMilliseconds(arguments.Int("--settle-ms", 1000, min: 0)),
            Rescan = TimeSpan.FromSeconds(arguments.Int("--rescan", 10)),
            MaxAttempts = arguments.Int("--max-attempts", 8),
            RequestTimeout = TimeSpan.FromSeconds(arguments.Int("--timeout", 100)),
            DeleteAfter = arguments.Flag("--delete-after"),
            ArchiveDirectory = archive,
            FailedDirectory = failed,
        };
    }
}
