using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace WasteClassifier.Cli.Ingest;

/// <summary>A file as the ingester knows it: where it is and which version (size and modification time).</summary>
public sealed record IngestFile(string Path, long Size, long MtimeTicks)
{
    public string Key => $"{Path}|{Size}|{MtimeTicks}";

    public static IngestFile? Stat(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) return null;
        // A symbolic link whose target is gone is listed as a file but cannot be read: there is nothing to send, and
        // answering it (file_missing) on every rescan would fill the state file.
        try
        {
            if (info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is not { Exists: true }) return null;
        }
        catch (IOException)
        {
            return null; // a link cycle, or a link removed meanwhile
        }
        return new IngestFile(info.FullName, info.Length, info.LastWriteTimeUtc.Ticks);
    }
}

/// <summary>
/// The ingester's memory across restarts: a JSON-lines file, appended and flushed to disk (fsync) before anything
/// depends on it. A batch is written as <c>send</c> (with its Idempotency-Key) before its request goes out and as
/// <c>done</c> once answered, so a restart resends an unanswered batch with the same key (the API replays it instead
/// of classifying twice) and skips every file answered. <c>cleaned</c> records the versions this ingester archived or
/// deleted after their answer, whose answers the next rewrite drops. A torn last line (a crash mid-write) is ignored.
/// </summary>
public sealed class IngestState : IDisposable
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public sealed record Entry(string Op, string Key, IReadOnlyList<EntryFile> Files);

    /// <param name="Status">A refusal's HTTP status: that of the API's answer which carried it (202 where other files of its
    /// request were accepted); none where wastectl refused the file without sending it, or where an older wastectl (which
    /// kept no status) recorded the refusal.</param>
    public sealed record EntryFile(string Path, long Size, long Mtime, string? Outcome = null, string? Id = null, string? Error = null, string? Message = null,
        int? Status = null)
    {
        public IngestFile File => new(Path, Size, Mtime);
    }

    public const string OpSend = "send";
    public const string OpDone = "done";
    public const string OpCleaned = "cleaned";
    public const string Accepted = "accepted";
    public const string Refused = "refused";

    private FileStream _stream;
    private readonly string _path;
    private readonly int _compactEvery;
    private readonly Action<string> _log;
    // Answers appended since the last rewrite, and how many the file held after it: a rewrite writes every answer kept,
    // so it waits for at least as many new ones (counted in answers: a rewritten file packs 256 to a record).
    private int _answersAdded, _answersAfterCompaction;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<string, EntryFile> _answered = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IReadOnlyList<IngestFile>> _unanswered = new(StringComparer.Ordinal);
    // Versions answered by this process (not read from the file at start).
    private readonly HashSet<string> _answeredThisRun = new(StringComparer.Ordinal);
    // The last answer recorded for each path, whichever version it was for.
    private readonly Dictionary<string, EntryFile> _latestByPath = new(StringComparer.Ordinal);
    // Answered versions archived or deleted by an ingester (cleaned records): the only answers a rewrite drops.
    private readonly HashSet<string> _cleaned = new(StringComparer.Ordinal);

    private IngestState(string path, int compactEvery, Action<string>? log)
    {
        _path = path;
        _compactEvery = compactEvery;
        _log = log ?? (_ => { });
        _stream = OpenStream(path);
    }

    private static FileStream OpenStream(string path) => new(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);

    /// <param name="compactEvery">The file is rewritten at start, and once this many answers (at least; more while it holds
    /// more) were added since its last rewrite, without the answers it no longer needs (see <see cref="Compact"/>).</param>
    /// <param name="log">Told when a rewrite fails (the file is then appended to as it is).</param>
    public static IngestState Open(string path, int compactEvery = 1000, Action<string>? log = null)
    {
        path = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var state = new IngestState(path, compactEvery, log);
        state.Load();
        state.Compact();
        return state;
    }

    /// <summary>
    /// Rewrites the file (a new file, fsynced, renamed over it) with what idempotent resending needs: every batch still
    /// unanswered, with its key, and every answer except those for versions the ingester archived or deleted itself, so an
    /// archiving watcher's state file no longer grows by every frame it ever sent. The files are never looked up: a folder
    /// briefly unreachable (an unmounted share, an I/O or permission error) would look like files gone, and dropping their
    /// answers would send them all again. A file that comes back after its answer was dropped is sent again.
    /// </summary>
    private void Compact()
    {
        try
        {
            Rewrite();
        }
        catch (Exception e)
        {
            // The file as it is stays right, only longer: a failed rewrite must neither stop a start nor lose a record.
            _log($"state file {_path}: could not rewrite it without the answers it no longer needs ({e.Message}); appending to it as it is");
        }
    }

    private void Rewrite()
    {
        // Runs at start or under the append gate: nothing is recorded meanwhile, so the snapshot stays current.
        List<EntryFile> kept;
        List<Entry> unanswered;
        lock (_answered)
        {
            _answersAdded = 0;
            _answersAfterCompaction = _answered.Count;
            // Nothing to drop but the send records of answered batches: not worth writing every answer again.
            if (_cleaned.Count == 0) return;
            kept = _answered.Values.Where(f => !_cleaned.Contains(f.File.Key)).ToList();
            unanswered = _unanswered.Select(u => new Entry(OpSend, u.Key, u.Value.Select(f => new EntryFile(f.Path, f.Size, f.MtimeTicks)).ToList())).ToList();
        }
        var entries = kept.Chunk(256).Select(files => new Entry(OpDone, "compacted", files)).Concat(unanswered).ToList();
        var temporary = _path + ".compacting.tmp"; // a partial name: never taken for a frame
        try
        {
            using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                // The state file's mode, not the umask's: it may be kept from other users on purpose.
                if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(file.SafeFileHandle, File.GetUnixFileMode(_stream.SafeFileHandle));
                foreach (var entry in entries) file.Write(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(entry, Json) + "\n"));
                file.Flush(flushToDisk: true);
            }
            _stream.Dispose();
            try
            {
                File.Move(temporary, _path, overwrite: true);
            }
            finally
            {
                // Moved or not, records go on to whichever file is there now.
                _stream = OpenStream(_path);
            }
        }
        catch
        {
            try
            {
                File.Delete(temporary);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Left for the next rewrite, which replaces it.
            }
            throw;
        }
        try
        {
            // The rename is durable only once the folder is on disk: a crash could otherwise bring the old file back.
            SyncDirectory(Path.GetDirectoryName(_path)!);
        }
        catch (IOException e)
        {
            _log($"state file {_path}: rewritten, but its folder could not be flushed to disk: {e.Message}");
        }
        lock (_answered)
        {
            _answered.Clear();
            _latestByPath.Clear();
            _cleaned.Clear();
            _answeredThisRun.IntersectWith(kept.Select(f => f.File.Key));
            foreach (var f in kept)
            {
                _answered[f.File.Key] = f;
                if (!_latestByPath.TryGetValue(f.Path, out var latest) || latest.Mtime <= f.Mtime) _latestByPath[f.Path] = f;
            }
            _answersAfterCompaction = _answered.Count;
        }
    }

    private static void SyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux()) return;
        var fd = open(directory, 0); // O_RDONLY
        if (fd < 0) throw new IOException($"open: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            if (fsync(fd) != 0) throw new IOException($"fsync: errno {Marshal.GetLastPInvokeError()}");
        }
        finally
        {
            _ = close(fd);
        }
    }

    [DllImport("libc.so.6", ExactSpelling = true, SetLastError = true)]
    private static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc.so.6", ExactSpelling = true, SetLastError = true)]
    private static extern int fsync(int fd);

    [DllImport("libc.so.6", ExactSpelling = true)]
    private static extern int close(int fd);

    /// <summary>Batches sent but never answered (the previous run stopped): resend them with the same key first.</summary>
    public IReadOnlyList<(string Key, IReadOnlyList<IngestFile> Files)> Unanswered
    {
        get
        {
            lock (_answered) return _unanswered.Select(p => (p.Key, p.Value)).ToList();
        }
    }

    public int AnsweredCount
    {
        get
        {
            lock (_answered) return _answered.Count;
        }
    }

    public EntryFile? Answer(IngestFile file)
    {
        lock (_answered) return _answered.GetValueOrDefault(file.Key);
    }

    /// <summary>The last answer recorded for <paramref name="path"/>, for this version of it or another.</summary>
    public EntryFile? LatestAnswer(string path)
    {
        lock (_answered) return _latestByPath.GetValueOrDefault(path);
    }

    public bool AnsweredThisRun(IngestFile file)
    {
        lock (_answered) return _answeredThisRun.Contains(file.Key);
    }

    public bool IsUnanswered(IngestFile file)
    {
        lock (_answered) return _unanswered.Values.Any(files => files.Any(f => f.Key == file.Key));
    }

    public Task RecordSendAsync(string key, IReadOnlyList<IngestFile> files, CancellationToken cancellationToken) =>
        AppendAsync(new Entry(OpSend, key, files.Select(f => new EntryFile(f.Path, f.Size, f.MtimeTicks)).ToList()), cancellationToken);

    public Task RecordDoneAsync(string key, IReadOnlyList<EntryFile> outcomes, CancellationToken cancellationToken) =>
        AppendAsync(new Entry(OpDone, key, outcomes), cancellationToken);

    /// <summary>These answered versions were archived or deleted by the ingester: their answers may go at the next rewrite.</summary>
    public Task RecordCleanedAsync(IReadOnlyList<IngestFile> files, CancellationToken cancellationToken) =>
        AppendAsync(new Entry(OpCleaned, OpCleaned, files.Select(f => new EntryFile(f.Path, f.Size, f.MtimeTicks)).ToList()), cancellationToken);

    private async Task AppendAsync(Entry entry, CancellationToken cancellationToken)
    {
        var line = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(entry, Json) + "\n");
        // Not cancellable once started: a half-written record is what a crash looks like, not what a Ctrl+C should leave.
        await _gate.WaitAsync(cancellationToken);
        try
        {
            _stream.Seek(0, SeekOrigin.End);
            await _stream.WriteAsync(line, CancellationToken.None);
            _stream.Flush(flushToDisk: true);
            Apply(entry);
            if (entry.Op == OpDone)
            {
                lock (_answered) _answeredThisRun.UnionWith(entry.Files.Where(f => f.Outcome is not null).Select(f => f.File.Key));
                _answersAdded += entry.Files.Count;
            }
            if (_answersAdded >= Math.Max(_compactEvery, _answersAfterCompaction)) Compact();
        }
        finally
        {
            _gate.Release();
        }
    }

    private void Load()
    {
        using var reader = new StreamReader(_stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, leaveOpen: true);
        long good = 0, position = 0;
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            position += Encoding.UTF8.GetByteCount(line) + 1;
            if (line.Length == 0) continue;
            Entry? entry;
            try
            {
                entry = JsonSerializer.Deserialize<Entry>(line, Json);
            }
            catch (JsonException)
            {
                break; // a torn write: everything after it is unusable
            }
            if (entry is null) break;
            Apply(entry);
            good = Math.Min(position, _stream.Length);
        }
        // Cut a torn tail so the next record starts on a line of its own.
        if (good < _stream.Length) _stream.SetLength(good);
    }

    private void Apply(Entry entry)
    {
        lock (_answered)
        {
            if (entry.Op == OpSend) _unanswered[entry.Key] = entry.Files.Select(f => f.File).ToList();
            else if (entry.Op == OpDone)
            {
                _unanswered.Remove(entry.Key);
                foreach (var f in entry.Files.Where(f => f.Outcome is not null))
                {
                    _answered[f.File.Key] = f;
                    _latestByPath[f.Path] = f;
                    _cleaned.Remove(f.File.Key); // answered again: it was back, so this answer is needed
                }
            }
            else if (entry.Op == OpCleaned)
            {
                foreach (var f in entry.Files)
                    if (_answered.ContainsKey(f.File.Key)) _cleaned.Add(f.File.Key);
            }
        }
    }

    public void Dispose()
    {
        _stream.Dispose();
        _gate.Dispose();
    }
}
