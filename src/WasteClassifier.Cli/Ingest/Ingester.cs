using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using WasteClassifier.Core.Imaging;

namespace WasteClassifier.Cli.Ingest;

/// <summary>
/// Gets a camera folder's images into the API: finds files (scan, watcher, periodic rescan), waits until each one's
/// size and time have settled, groups them into multi-file requests sent with bounded concurrency, records every
/// answer in <see cref="IngestState"/> and optionally deletes or archives what was accepted and moves aside what was
/// refused for good (<see cref="IngestOptions.FailedDirectory"/>). Stopping it at any point
/// and starting it again sends no file twice.
/// </summary>
public sealed class Ingester(IngestOptions options, HttpClient http, Action<string>? log = null)
{
    public sealed record Failure(string Path, string Error, string Message);

    /// <summary><see cref="Unreadable"/>: files not sent because they could not be read; not recorded, so the next run tries them again.</summary>
    public sealed record Summary(int Sent, int Refused, int Skipped, int Deferred, long Retries, TimeSpan Elapsed, string? FatalError, IReadOnlyList<Failure> Failures,
        IReadOnlyList<Failure> Unreadable)
    {
        public double Rate => Elapsed.TotalSeconds > 0 ? Sent / Elapsed.TotalSeconds : 0;
    }

    private readonly Action<string> _log = log ?? (_ => { });
    private readonly ConcurrentDictionary<string, byte> _claimed = new(StringComparer.Ordinal);
    // Incomplete: its format says it is not whole yet (checked once per version; see ImageCompleteness).
    private readonly ConcurrentDictionary<string, (long Size, long Mtime, DateTime Since, bool Incomplete)> _settling = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _reportedSkipped = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _warnedSubfolders = new(StringComparer.Ordinal);
    // Archives, deletions and moves to the failed-files folder that failed and were logged ("what|path" → the version's
    // IngestFile.Key): once per version, and again after one succeeded; removed when it succeeds.
    private readonly ConcurrentDictionary<string, string> _moveFailed = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<Failure> _failures = new();
    // Files whose last read failed, with when to try again (watching; MaxValue: being tried, or a single pass).
    private readonly ConcurrentDictionary<string, (int Tries, string Reason, DateTime RetryAt)> _unreadable = new(StringComparer.Ordinal);
    private readonly Channel<IngestFile> _ready = Channel.CreateUnbounded<IngestFile>();
    private IngestState _state = null!;
    private IngestClient _client = null!;
    private int _sent, _refused, _skipped, _deferred, _inFlight;
    private string? _fatal;

    public async Task<Summary> RunAsync(CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        using var run = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var state = IngestState.Open(options.StateFile, log: _log);
        _state = state;
        _client = new IngestClient(http, options, _log);
        var stateFile = Path.GetFullPath(options.StateFile);
        // Without a trailing separator: the files of the archive and of the failed-files folder are told apart by folder + separator.
        var movedTo = new[] { options.ArchiveDirectory, options.FailedDirectory }.OfType<string>()
            .Select(d => Path.TrimEndingDirectorySeparator(Path.GetFullPath(d))).ToList();
        foreach (var folder in movedTo) Directory.CreateDirectory(folder);

        var sends = new List<Task>();
        using var slots = new SemaphoreSlim(Math.Max(1, options.Concurrency));
        // What the last run sent without an answer goes first, under its original key (the API replays it if it got there).
        foreach (var (key, files) in state.Unanswered)
        {
            foreach (var f in files) _claimed[f.Path] = 1;
            await slots.WaitAsync(run.Token).ConfigureAwait(false);
            sends.Add(SendAsync(key, files, slots, run));
        }

        var progress = ReportProgressAsync(clock, run.Token);
        var discovery = DiscoverAsync(stateFile, movedTo, run.Token);
        try
        {
            await BatchAsync(slots, sends, run).ConfigureAwait(false);
            await Task.WhenAll(sends).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (run.IsCancellationRequested)
        {
            // Stopped (Ctrl+C, or a fatal answer): whatever was in flight stays "sent" in the state file and is resent next time.
        }
        await run.CancelAsync();
        await Task.WhenAll(sends.Select(Quietly)).ConfigureAwait(false);
        await Quietly(discovery).ConfigureAwait(false);
        await Quietly(progress).ConfigureAwait(false);
        var unreadable = _unreadable.OrderBy(u => u.Key, StringComparer.Ordinal).Select(u => new Failure(u.Key, "file_unreadable", u.Value.Reason)).ToList();
        return new Summary(_sent, _refused, _skipped, _deferred, _client.Retries, clock.Elapsed, _fatal, _failures.ToList(), unreadable);
    }

    /// <param name="movedTo">The archive and the failed-files folder: what this ingester moved there is not looked at again.</param>
    private async Task DiscoverAsync(string stateFile, IReadOnlyList<string> movedTo, CancellationToken cancellationToken)
    {
        try
        {
            bool Wanted(string p) => p != stateFile && FileDiscovery.IsCandidate(p) && !FileDiscovery.IsUnder(p, movedTo);
            IEnumerable<string> Scan()
            {
                if (!options.Recursive) WarnOfSubfolders(movedTo);
                return options.WatchDirectory is null
                    ? FileDiscovery.Expand(options.Paths, options.Recursive)
                    : FileDiscovery.ScanDirectory(options.WatchDirectory, options.Recursive, movedTo);
            }

            using var watcher = options.Once || options.WatchDirectory is null ? null : Watch(options.WatchDirectory, Wanted);
            foreach (var path in Scan().Where(Wanted)) Offer(path);
            var lastScan = DateTime.UtcNow;
            var tick = TimeSpan.FromMilliseconds(Math.Clamp(options.Settle.TotalMilliseconds / 4, 20, 250));
            while (true)
            {
                if (!_unreadable.IsEmpty) RetryUnreadable();
                var cleaned = new List<IngestFile>();
                foreach (var (file, error, message) in Settle(cleaned)) await RefuseAsync(file, error, message).ConfigureAwait(false);
                if (cleaned.Count > 0) await _state.RecordCleanedAsync(cleaned, CancellationToken.None).ConfigureAwait(false);
                if ((options.Once || options.WatchDirectory is null) && _settling.IsEmpty)
                {
                    _ready.Writer.TryComplete();
                    return;
                }
                if (!options.Once && options.WatchDirectory is not null && DateTime.UtcNow - lastScan >= options.Rescan)
                {
                    foreach (var path in Scan().Where(Wanted)) Offer(path);
                    lastScan = DateTime.UtcNow;
                }
                await Task.Delay(tick, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            _ready.Writer.TryComplete();
        }
        catch (Exception e)
        {
            _ready.Writer.TryComplete(e);
        }
    }

    /// <summary>Without --recursive a folder's subfolders are not looked in: said once per folder given, not silently.</summary>
    private void WarnOfSubfolders(IReadOnlyList<string> movedTo)
    {
        var roots = options.WatchDirectory is { } watch ? [watch] : options.Paths.Where(p => p.IndexOfAny(['*', '?']) < 0 && Directory.Exists(p));
        foreach (var root in roots)
        {
            if (_warnedSubfolders.ContainsKey(root)) continue;
            var count = FileDiscovery.Subfolders(root, movedTo);
            if (count == 0 || !_warnedSubfolders.TryAdd(root, 0)) continue;
            _log($"{root}: {count} subfolder(s) skipped; use --recursive to send their files too");
        }
    }

    private FileSystemWatcher Watch(string directory, Func<string, bool> wanted)
    {
        var watcher = new FileSystemWatcher(directory)
        {
            IncludeSubdirectories = options.Recursive,
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.LastWrite,
            InternalBufferSize = 64 * 1024,
        };
        void OnEvent(object? _, FileSystemEventArgs e)
        {
            if (wanted(e.FullPath)) Offer(e.FullPath);
        }
        watcher.Created += OnEvent;
        watcher.Changed += OnEvent;
        watcher.Renamed += (s, e) => OnEvent(s, e);
        // An overflow loses events; the periodic rescan finds those files.
        watcher.Error += (_, e) => _log($"folder watcher: {e.GetException().Message}; relying on the periodic rescan");
        watcher.EnableRaisingEvents = true;
        return watcher;
    }

    private void Offer(string path)
    {
        if (_claimed.ContainsKey(path) || _settling.ContainsKey(path)) return;
        _settling.TryAdd(path, (-1, -1, DateTime.UtcNow, false));
    }

    /// <summary>
    /// A file is ready once neither its size nor its time has changed for <see cref="IngestOptions.Settle"/> and, for a
    /// JPEG or PNG, its format says it is whole. Returns the files refused here: still empty, or still not whole,
    /// after <see cref="IngestOptions.IncompleteAfterOrDefault"/> (a writer that stopped; a later version is a file of its own).
    /// Files it archives or deletes (answered before a stop) are added to <paramref name="cleaned"/>, for the state file.
    /// </summary>
    private List<(IngestFile File, string Error, string Message)> Settle(List<IngestFile> cleaned)
    {
        var now = DateTime.UtcNow;
        var refused = new List<(IngestFile, string, string)>();
        foreach (var (path, seen) in _settling)
        {
            var file = IngestFile.Stat(path);
            if (file is null)
            {
                _settling.TryRemove(path, out _);
                _unreadable.TryRemove(path, out _);
                continue;
            }
            if (file.Size != seen.Size || file.MtimeTicks != seen.Mtime)
            {
                _settling[path] = (file.Size, file.MtimeTicks, now, false);
                continue;
            }
            if (now - seen.Since < options.Settle) continue;
            // A file recorded as gone is here again (a sync tool that deletes and recreates it, times kept), or one recorded as
            // replaced has a new version of the same size and time: the API never took those bytes, so they are sent.
            if (_state.Answer(file) is { } answer && answer.Error is not (IngestClient.FileMissing or IngestClient.FileChanged))
            {
                _settling.TryRemove(path, out _);
                _unreadable.TryRemove(path, out _);
                // Only what earlier runs answered: a rescan finds again what this run sent (not archived or deleted).
                if (!_state.AnsweredThisRun(file) && _reportedSkipped.TryAdd(file.Key, 0)) Interlocked.Increment(ref _skipped);
                // Answered before a stop that came ahead of its clean-up (or its move to the failed-files folder): finish that now.
                if (answer.Outcome == IngestState.Accepted ? CleanUp(file) : MoveRefused(answer)) cleaned.Add(file);
                continue;
            }
            // Read once per version while it waits (a file whose size and time stay put rarely becomes whole), and once more
            // before it is refused: a writer that preallocated the full size, or a file system with coarse times, completes
            // a file without changing either. An empty file waits as long: an FTP server creates it before its data arrives.
            if (seen.Incomplete || file.Size == 0 || !ImageCompleteness.IsComplete(path))
            {
                if (!seen.Incomplete) _settling[path] = seen with { Incomplete = true };
                if (now - seen.Since < options.IncompleteAfterOrDefault) continue;
                var verdict = file.Size == 0 ? ImageCompleteness.Verdict.Incomplete : ImageCompleteness.Check(path);
                if (verdict != ImageCompleteness.Verdict.Complete)
                {
                    _settling.TryRemove(path, out _);
                    var waited = $"{options.IncompleteAfterOrDefault.TotalSeconds:0.#} s after it last changed";
                    refused.Add(file.Size == 0 ? (file, EmptyFile, $"the file was still empty {waited}")
                        // The API refuses such a file as truncated_image: sending it would only get that answer.
                        : verdict == ImageCompleteness.Verdict.JpegWithoutEnd ? (file, ImageErrors.Truncated,
                            $"the camera wrote a JPEG without its end: no end-of-image marker (FFD9) after its scan {waited}; the API refuses such a file; a later version is sent as a file of its own")
                        : (file, IncompleteFile, $"the image was still cut short (no end marker) {waited}; a later version is sent as a file of its own"));
                    continue;
                }
            }
            _settling.TryRemove(path, out _);
            if (_state.IsUnanswered(file) || !_claimed.TryAdd(path, 0)) continue;
            // A file answered before in another version (it grew or was rewritten after it was sent) goes as a new frame: said so.
            if (_state.LatestAnswer(path) is { } earlier && earlier.File.Key != file.Key && earlier.Error is not (IngestClient.FileMissing or IngestClient.FileChanged))
                _log($"{path} changed after it was answered ({earlier.Outcome}{(earlier.Error is null ? "" : $" {earlier.Error}")}, {earlier.Size} bytes; now {file.Size} bytes): sending it as a new frame");
            _ready.Writer.TryWrite(file);
        }
        return refused;
    }

    /// <summary>The error recorded for a file still empty <see cref="IngestOptions.IncompleteAfterOrDefault"/> after it was found.</summary>
    public const string EmptyFile = "empty_file";

    /// <summary>The error recorded for a PNG, or a signature's first bytes, that stayed cut short (see <see cref="ImageCompleteness"/>);
    /// a JPEG without its end is recorded as the API would refuse it, <see cref="ImageErrors.Truncated"/>.</summary>
    public const string IncompleteFile = "incomplete_file";

    /// <summary>A file refused before any request, recorded like the API's refusals (its version is not looked at again).</summary>
    private async Task RefuseAsync(IngestFile file, string error, string message)
    {
        var refusal = new IngestState.EntryFile(file.Path, file.Size, file.MtimeTicks, IngestState.Refused, null, error, message);
        await _state.RecordDoneAsync("local-" + IngestClient.KeyFor(options.Source, [file]), [refusal], CancellationToken.None).ConfigureAwait(false);
        Interlocked.Increment(ref _refused);
        _failures.Enqueue(new Failure(file.Path, error, message));
        _log($"refused {file.Path}: {error}: {message}");
        await MovedAsideAsync([refusal]).ConfigureAwait(false);
    }

    /// <summary>Moves these refusals' files to the failed-files folder, recording those moved (see <see cref="MoveRefused"/>).</summary>
    private async Task MovedAsideAsync(IReadOnlyList<IngestState.EntryFile> refusals)
    {
        var moved = refusals.Where(MoveRefused).Select(r => r.File).ToList();
        if (moved.Count > 0) await _state.RecordCleanedAsync(moved, CancellationToken.None).ConfigureAwait(false);
    }

    private async Task BatchAsync(SemaphoreSlim slots, List<Task> sends, CancellationTokenSource run)
    {
        var reader = _ready.Reader;
        var batch = new List<IngestFile>();
        long bytes = 0;
        while (await reader.WaitToReadAsync(run.Token).ConfigureAwait(false))
        {
            var deadline = DateTime.UtcNow + options.BatchWait;
            while (true)
            {
                while (batch.Count < options.BatchSize && bytes < options.MaxBatchBytes && reader.TryRead(out var file))
                {
                    batch.Add(file);
                    bytes += file.Size;
                }
                var full = batch.Count >= options.BatchSize || bytes >= options.MaxBatchBytes;
                var wait = deadline - DateTime.UtcNow;
                if (full || wait <= TimeSpan.Zero || reader.Completion.IsCompleted) break;
                // A partly filled batch waits a moment for the next frames.
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(run.Token);
                timeout.CancelAfter(wait);
                try
                {
                    if (!await reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false)) break;
                }
                catch (OperationCanceledException) when (!run.IsCancellationRequested)
                {
                    break;
                }
            }
            if (batch.Count == 0) continue;
            var files = batch.ToList();
            batch.Clear();
            bytes = 0;
            await slots.WaitAsync(run.Token).ConfigureAwait(false);
            sends.Add(SendAsync(IngestClient.KeyFor(options.Source, files), files, slots, run, recordIntent: true));
            sends.RemoveAll(t => t.IsCompletedSuccessfully);
        }
    }

    private async Task SendAsync(string key, IReadOnlyList<IngestFile> files, SemaphoreSlim slots, CancellationTokenSource run, bool recordIntent = false)
    {
        Interlocked.Add(ref _inFlight, files.Count);
        try
        {
            await SendOneAsync(key, files, run, recordIntent).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Add(ref _inFlight, -files.Count);
            slots.Release();
        }
    }

    /// <param name="byContent">
    /// The API did not take these files in their present content under <paramref name="key"/>: they go under a key of their
    /// content (<see cref="IngestClient.ContentKeyFor"/>) instead.
    /// </param>
    private async Task SendOneAsync(string key, IReadOnlyList<IngestFile> files, CancellationTokenSource run, bool recordIntent, bool byContent = false)
    {
        var batch = new IngestClient.Batch(await IngestClient.ReadAsync(files, run.Token).ConfigureAwait(false));
        var refusedKey = byContent ? key : null;
        string KeyOf(IngestClient.Batch b) => byContent ? IngestClient.ContentKeyFor(options.Source, b.Parts!) : IngestClient.KeyFor(options.Source, b.Files);
        if (byContent) key = KeyOf(batch);
        if (recordIntent && batch.Parts!.Any(p => p.Unreadable is not null || p.Changed))
        {
            // Read before the batch is recorded, so a file that cannot be read now is left out of it (and its key): sent
            // later, its bytes go under a key no earlier request used, and no replay can answer for it with a placeholder's refusal.
            // So is one that changed since it settled (still being written): it settles again and goes under its new version's key.
            foreach (var part in batch.Parts!.Where(p => p.Unreadable is not null || p.Changed)) ReadFailed(part.File, part.Unreadable ?? "it changed after it was found");
            var kept = batch.Parts!.Where(p => p.Unreadable is null && !p.Changed).ToList();
            if (kept.Count == 0) return;
            batch = new IngestClient.Batch(kept);
            key = KeyOf(batch);
        }
        if (key == refusedKey)
        {
            // The key of this content is the one the API holds something else under (only another client using it can do
            // that): no key is left to try, and resending under it would never end.
            var reason = $"the API holds another request under {key}, the key of these files' content";
            var refusals = batch.Files.Select(f => new IngestState.EntryFile(f.Path, f.Size, f.MtimeTicks, IngestState.Refused, null, IngestClient.KeyReused, reason, 422)).ToList();
            await _state.RecordDoneAsync(key, refusals, CancellationToken.None).ConfigureAwait(false);
            // Moved while still claimed: a rescan meanwhile must not move them too.
            await MovedAsideAsync(refusals).ConfigureAwait(false);
            foreach (var file in batch.Files)
            {
                Interlocked.Increment(ref _refused);
                _failures.Enqueue(new Failure(file.Path, IngestClient.KeyReused, reason));
                _claimed.TryRemove(file.Path, out _);
            }
            return;
        }
        // Written (and on disk) before the request leaves: a restart then resends this exact batch under this key.
        if (recordIntent) await _state.RecordSendAsync(key, batch.Files, run.Token).ConfigureAwait(false);
        // A batch resent from the state file, or tried before in this run, may have reached the API: its replay answers for it.
        var mayReplay = !recordIntent;
        while (true)
        {
            var result = await _client.SendAsync(key, batch, mayReplay, run.Token).ConfigureAwait(false);
            switch (result.Kind)
            {
                case IngestClient.Kind.Answered:
                    await _state.RecordDoneAsync(key, result.Outcomes, CancellationToken.None).ConfigureAwait(false);
                    // A resent batch's file that cannot be read now, and that no replay answered for: tried again later.
                    foreach (var part in (batch.Parts ?? []).Where(p => p.Unreadable is not null && !result.Outcomes.Any(o => o.Path == p.File.Path)))
                        ReadFailed(part.File, part.Unreadable!);
                    var cleaned = new List<IngestFile>();
                    foreach (var outcome in result.Outcomes)
                    {
                        if (outcome.Outcome == IngestState.Accepted)
                        {
                            Interlocked.Increment(ref _sent);
                            if (CleanUp(outcome.File)) cleaned.Add(outcome.File);
                        }
                        else
                        {
                            Interlocked.Increment(ref _refused);
                            _failures.Enqueue(new Failure(outcome.Path, outcome.Error ?? "refused", outcome.Message ?? ""));
                            if (MoveRefused(outcome)) cleaned.Add(outcome.File);
                        }
                        _claimed.TryRemove(outcome.Path, out _);
                        if (!_unreadable.IsEmpty) _unreadable.TryRemove(outcome.Path, out _);
                        if (outcome.Error == IngestClient.FileChanged) NewVersionFound(outcome.Path);
                    }
                    // One record per batch (archived, deleted or moved to the failed-files folder): the state file's rewrites drop
                    // only the answers of files this ingester moved away.
                    if (cleaned.Count > 0) await _state.RecordCleanedAsync(cleaned, CancellationToken.None).ConfigureAwait(false);
                    if (result.Resend is { Count: > 0 } resend)
                    {
                        // Not taken under this key in their present content (see IngestClient.Result): recorded as a batch of
                        // their own before it is sent, as any batch is.
                        _log($"sending {resend.Count} file(s) again under a key of their content: the API did not take them in this content under the key of their batch");
                        await SendOneAsync(key, resend, run, recordIntent: true, byContent: true).ConfigureAwait(false);
                    }
                    return;
                case IngestClient.Kind.TooLarge when batch.Files.Count > 1:
                    // The request was over the API's body limit: close this batch unanswered and send it in halves, each read
                    // again when its turn comes (no bytes wait on the other half's tries).
                    await _state.RecordDoneAsync(key, [], CancellationToken.None).ConfigureAwait(false);
                    var half = batch.Files.Count / 2;
                    foreach (var part in new[] { batch.Files.Take(half).ToList(), batch.Files.Skip(half).ToList() })
                        await SendOneAsync(IngestClient.KeyFor(options.Source, part), part, run, recordIntent: true).ConfigureAwait(false);
                    return;
                case IngestClient.Kind.TooLarge:
                    var single = batch.Files[0];
                    var tooLarge = new IngestState.EntryFile(single.Path, single.Size, single.MtimeTicks, IngestState.Refused, null, "request_too_large", result.Reason, 413);
                    await _state.RecordDoneAsync(key, [tooLarge], CancellationToken.None).ConfigureAwait(false);
                    await MovedAsideAsync([tooLarge]).ConfigureAwait(false);
                    Interlocked.Increment(ref _refused);
                    _failures.Enqueue(new Failure(single.Path, "request_too_large", result.Reason ?? ""));
                    _claimed.TryRemove(single.Path, out _);
                    return;
                case IngestClient.Kind.GaveUp when !options.Once && options.WatchDirectory is not null:
                    // Watching: keep the batch (same key; its files only, read again for the next try) and try again after a rescan period.
                    _log($"batch of {batch.Files.Count} deferred: {result.Reason}");
                    await Task.Delay(options.Rescan, run.Token).ConfigureAwait(false);
                    mayReplay = true;
                    continue;
                case IngestClient.Kind.GaveUp:
                    Interlocked.Add(ref _deferred, batch.Files.Count);
                    _log($"batch of {batch.Files.Count} left for the next run: {result.Reason}");
                    return;
                default:
                    _fatal = result.Reason;
                    _log($"stopping: {result.Reason}");
                    await run.CancelAsync().ConfigureAwait(false);
                    return;
            }
        }
    }

    private bool Watching => !options.Once && options.WatchDirectory is not null;

    /// <summary>
    /// A file replaced while its batch was resent: the old version was answered <c>file_changed</c>, and the new one is a
    /// file of its own, whose events came while the path was claimed. Watching, it settles and goes now; a single pass's
    /// discovery may be over, so it is left for the next run and counted as such (exit code 1).
    /// </summary>
    private void NewVersionFound(string path)
    {
        if (Watching)
        {
            Offer(path);
            return;
        }
        Interlocked.Increment(ref _deferred);
        _log($"left for the next run: the new version of {path}, replaced while its batch was resent");
    }

    /// <summary>
    /// A read error (a lock, a file being replaced, a flaky mount, permissions) is not a verdict on the file, so it is never
    /// recorded. Watching, the file stays claimed and is offered again after a backoff that doubles up to
    /// <see cref="IngestOptions.RetryMax"/>, for as long as the run lasts: a watcher nobody restarts must not give up on a
    /// frame for good. A single pass reports it as not sent; the next run tries again.
    /// </summary>
    private void ReadFailed(IngestFile file, string reason)
    {
        var tries = (_unreadable.TryGetValue(file.Path, out var before) ? before.Tries : 0) + 1;
        if (!Watching)
        {
            _unreadable[file.Path] = (tries, reason, DateTime.MaxValue);
            _log($"not sent {file.Path}: could not be read: {reason} (the next run tries again)");
            return;
        }
        var delay = ReadBackoff(tries);
        _unreadable[file.Path] = (tries, reason, DateTime.UtcNow + delay);
        // Logged when it starts and once the backoff is at its longest, not on every try of a file that stays unreadable.
        if (tries == 1)
            _log($"could not read {file.Path}: {reason}; trying again in {delay.TotalSeconds:0.#} s, then less often (every {options.RetryMax.TotalSeconds:0.#} s at most)");
        else if (delay >= options.RetryMax && ReadBackoff(tries - 1) < options.RetryMax)
            _log($"still cannot read {file.Path} after {tries} tries: {reason}; trying again every {delay.TotalSeconds:0.#} s");
    }

    private TimeSpan ReadBackoff(int tries) =>
        TimeSpan.FromMilliseconds(Math.Min(options.RetryBase.TotalMilliseconds * Math.Pow(2, Math.Min(tries - 1, 20)), options.RetryMax.TotalMilliseconds));

    private void RetryUnreadable()
    {
        var now = DateTime.UtcNow;
        foreach (var (path, unreadable) in _unreadable)
        {
            if (unreadable.RetryAt > now) continue;
            _unreadable[path] = unreadable with { RetryAt = DateTime.MaxValue };
            _claimed.TryRemove(path, out _);
            Offer(path);
        }
    }

    /// <summary>Deletes or archives <paramref name="file"/> as the options say; true when it did.</summary>
    private bool CleanUp(IngestFile file)
    {
        if (options.DeleteAfter) return MoveAway(file, "delete", null, null);
        return options.ArchiveDirectory is not null && MoveAway(file, "archive", options.ArchiveDirectory, null);
    }

    /// <summary>The name of the file that says why a file in the failed-files folder was refused: its name and this.</summary>
    public const string ErrorSidecarSuffix = ".error.json";

    private static readonly JsonSerializerOptions SidecarJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    /// <summary>
    /// With <see cref="IngestOptions.FailedDirectory"/>, moves the file of a refusal the file itself earned there, with a
    /// <c>.error.json</c> beside it saying why; true when it did. Only a refusal the API answered (it has an HTTP status):
    /// wastectl's own verdicts (an empty file, an image cut short) are guesses about a file a writer may still hold open,
    /// which must stay where its next version can appear. Not a file gone or replaced before it was sent (nothing to move,
    /// or a new version to send), and nothing refused as a whole request: those stop the run or are retried.
    /// </summary>
    private bool MoveRefused(IngestState.EntryFile refusal)
    {
        if (options.FailedDirectory is null || refusal.Outcome != IngestState.Refused || refusal.Status is null
            || refusal.Error is IngestClient.FileMissing or IngestClient.FileChanged)
            return false;
        var sidecar = JsonSerializer.SerializeToUtf8Bytes(new
        {
            file = refusal.Path,
            source = options.Source,
            size = refusal.Size,
            status = refusal.Status,
            error = refusal.Error,
            message = refusal.Message,
            time = DateTime.UtcNow,
        }, SidecarJson);
        return MoveAway(refusal.File, "move to the failed-files folder", options.FailedDirectory, sidecar);
    }

    /// <summary>
    /// Deletes <paramref name="file"/> (no <paramref name="folder"/>) or moves it into <paramref name="folder"/> under its path
    /// relative to the watched folder (its name for files given), adding -1, -2 … on a clash: nothing there is overwritten but
    /// a sidecar left without its file which names this file and its size (see <see cref="IsOrphanSidecar"/>).
    /// <paramref name="sidecar"/> is written beside it first (name + <see cref="ErrorSidecarSuffix"/>), so a moved file always
    /// has it. Only the version that was answered: a file rewritten since is a new frame and stays. True when it did.
    /// Internal for the tests that run moves at the same moment.
    /// </summary>
    internal bool MoveAway(IngestFile file, string what, string? folder, byte[]? sidecar)
    {
        if (IngestFile.Stat(file.Path) is not { } now || now.Key != file.Key) return false;
        string? written = null;
        var failedKey = $"{what}|{file.Path}";
        try
        {
            if (folder is null)
            {
                File.Delete(file.Path);
                _moveFailed.TryRemove(failedKey, out _);
                return true;
            }
            var relative = options.WatchDirectory is null ? Path.GetFileName(file.Path) : Path.GetRelativePath(Path.GetFullPath(options.WatchDirectory), file.Path);
            var target = Path.Combine(folder, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            for (var n = 1; ; n++)
            {
                if (!File.Exists(target))
                {
                    if (sidecar is null) break;
                    // Over a sidecar only where it is this file's orphan (reuse); else a new one (CreateNew), so a move of
                    // another file to the same name at the same moment fails here or takes the next name, never overwrites it.
                    // Two moves of one path never race: the path is claimed while its batch is handled.
                    var reuse = File.Exists(target + ErrorSidecarSuffix);
                    if (!reuse || IsOrphanSidecar(target, file))
                    {
                        try
                        {
                            using var stream = new FileStream(target + ErrorSidecarSuffix, reuse ? FileMode.Create : FileMode.CreateNew, FileAccess.Write);
                            written = stream.Name;
                            stream.Write(sidecar);
                            stream.Flush(flushToDisk: true);
                            break;
                        }
                        catch (IOException) when (!reuse && File.Exists(target + ErrorSidecarSuffix))
                        {
                            // Another move wrote this name's sidecar since the check: the next name.
                        }
                    }
                }
                target = Path.Combine(Path.GetDirectoryName(target)!, $"{Path.GetFileNameWithoutExtension(relative)}-{n}{Path.GetExtension(relative)}");
            }
            File.Move(file.Path, target);
            _moveFailed.TryRemove(failedKey, out _);
            if (sidecar is not null) _log($"moved {file.Path} to {target} (why: {target}{ErrorSidecarSuffix})");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Tried again whenever a rescan finds the file: said once per version of the file, not at every rescan
            // (one path at a time: it is claimed while its batch is handled).
            if (!_moveFailed.TryGetValue(failedKey, out var logged) || logged != file.Key)
            {
                _moveFailed[failedKey] = file.Key;
                _log($"could not {what} {file.Path}: {e.Message}; it stays in place{(Watching ? " (tried again at each rescan, not logged again)" : "")}");
            }
            // A sidecar of a file that stayed would explain nothing: the next try writes its own.
            if (written is not null) TryDelete(written);
        }
        return false;
    }

    /// <summary>
    /// Whether the sidecar at <paramref name="target"/> + <see cref="ErrorSidecarSuffix"/>, with no file beside it, was written
    /// for this <paramref name="file"/>: same path and size (a run that stopped before the move, or a file moved back to be
    /// sent again). Its slot is this file's, so a refused file ends up as one file and one sidecar, not under a -1 name
    /// beside an orphan. Another file of that path (another size) keeps the old sidecar and takes the next name.
    /// </summary>
    private static bool IsOrphanSidecar(string target, IngestFile file)
    {
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllBytes(target + ErrorSidecarSuffix));
            var root = json.RootElement;
            return root.ValueKind == JsonValueKind.Object
                && root.TryGetProperty("file", out var path) && path.ValueKind == JsonValueKind.String && path.GetString() == file.Path
                && root.TryGetProperty("size", out var size) && size.TryGetInt64(out var bytes) && bytes == file.Size;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return false; // not one of ours, or unreadable: left alone
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left behind: it names the file it was written for.
        }
    }

    private async Task ReportProgressAsync(Stopwatch clock, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(options.ProgressInterval, cancellationToken).ConfigureAwait(false);
                _log(ProgressLine(clock.Elapsed));
            }
        }
        catch (OperationCanceledException)
        {
            // The run ended.
        }
    }

    public string ProgressLine(TimeSpan elapsed) =>
        $"{_sent} sent, {_refused} refused, {_skipped} already sent, {_ready.Reader.Count + _settling.Count} waiting, {Volatile.Read(ref _inFlight)} in flight, " +
        (_unreadable.IsEmpty ? "" : $"{_unreadable.Count} unreadable, ") +
        $"{_client.Retries} retries · {(elapsed.TotalSeconds > 0 ? _sent / elapsed.TotalSeconds : 0):0.0} files/s";

    private static async Task Quietly(Task task)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Cancellation is how a run stops.
        }
    }
}
