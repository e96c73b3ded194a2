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
/// of classifying twice) and skips every file answered. A torn last line (a crash mid-write) is ignored.
/// </summary>
public sealed class IngestState : IDisposable
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public sealed record Entry(string Op, string Key, IReadOnlyList<EntryFile> Files);

    public sealed record EntryFile(string Path, long Size, long Mtime, string? Outcome = null, string? Id = null, string? Error = null, string? Message = null)
    {
        public IngestFile File => new(Path, Size, Mtime);
    }

    public const string OpSend = "send";
    public const string OpDone = "done";
    public const string Accepted = "accepted";
    public const string Refused = "refused";

    private FileStream _stream;
    private readonly string _path;
    private readonly int _compactEvery;
    // Records in the file, and how many of them the file held after its last rewrite.
    private int _records, _recordsAfterCompaction;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<string, EntryFile> _answered = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IReadOnlyList<IngestFile>> _unanswered = new(StringComparer.Ordinal);
    // Versions answered by this process (not read from the file at start).
    private readonly HashSet<string> _answeredThisRun = new(StringComparer.Ordinal);
    // The last answer recorded for each path, whichever version it was for.
    private readonly Dictionary<string, EntryFile> _latestByPath = new(StringComparer.Ordinal);

    private IngestState(string path, int compactEvery)
    {
        _path = path;
        _compactEvery = compactEvery;
        _stream = OpenStream(path);
    }

    private static FileStream OpenStream(string path) => new(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);

    /// <param name="compactEvery">The file is rewritten at start, and once this many records (at least; more while it holds
    /// more live ones) were added since its last rewrite, without the answers it no longer needs (see <see cref="Compact"/>).</param>
    public static IngestState Open(string path, int compactEvery = 1000)
    {
        path = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var state = new IngestState(path, compactEvery);
        state.Load();
        state.Compact();
        return state;
    }

    /// <summary>
    /// Rewrites the file (a new file, fsynced, renamed over it) with what idempotent resending needs: every batch still
    /// unanswered, with its key, and the answer for each file that still exists. Answers for files gone (archived, deleted,
    /// moved) are dropped, so an archiving watcher's state file no longer grows by every frame it ever sent. A file that
    /// comes back after its answer was dropped is sent again.
    /// </summary>
    private void Compact()
    {
        // Runs at start or under the append gate: nothing is recorded meanwhile, so the snapshot stays current.
        List<EntryFile> answered;
        List<Entry> unanswered;
        lock (_answered)
        {
            answered = _answered.Values.ToList();
            unanswered = _unanswered.Select(u => new Entry(OpSend, u.Key, u.Value.Select(f => new EntryFile(f.Path, f.Size, f.MtimeTicks)).ToList())).ToList();
        }
        var kept = answered.Where(f => File.Exists(f.Path)).ToList();
        var entries = kept.Chunk(256).Select(files => new Entry(OpDone, "compacted", files)).Concat(unanswered).ToList();
        if (entries.Count >= _records)
        {
            _recordsAfterCompaction = _records;
            return; // nothing to drop
        }
        var temporary = _path + ".compacting.tmp"; // a partial name: never taken for a frame
        using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            foreach (var entry in entries) file.Write(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(entry, Json) + "\n"));
            file.Flush(flushToDisk: true);
        }
        _stream.Dispose();
        File.Move(temporary, _path, overwrite: true);
        _stream = OpenStream(_path);
        lock (_answered)
        {
            _answered.Clear();
            _latestByPath.Clear();
            _answeredThisRun.IntersectWith(kept.Select(f => f.File.Key));
            foreach (var f in kept)
            {
                _answered[f.File.Key] = f;
                if (!_latestByPath.TryGetValue(f.Path, out var latest) || latest.Mtime <= f.Mtime) _latestByPath[f.Path] = f;
            }
        }
        _records = _recordsAfterCompaction = entries.Count;
    }

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
                lock (_answered) _answeredThisRun.UnionWith(entry.Files.Where(f => f.Outcome is not null).Select(f => f.File.Key));
            // Amortised: a rewrite checks every live answer's file, so it waits for at least as many new records.
            if (++_records - _recordsAfterCompaction >= Math.Max(_compactEvery, _recordsAfterCompaction)) Compact();
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
            _records++;
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
                }
            }
        }
    }

    public void Dispose()
    {
        _stream.Dispose();
        _gate.Dispose();
    }
}
