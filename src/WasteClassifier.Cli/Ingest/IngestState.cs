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

    private readonly FileStream _stream;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<string, EntryFile> _answered = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IReadOnlyList<IngestFile>> _unanswered = new(StringComparer.Ordinal);
    // Versions answered by this process (not read from the file at start).
    private readonly HashSet<string> _answeredThisRun = new(StringComparer.Ordinal);
    // The last answer recorded for each path, whichever version it was for.
    private readonly Dictionary<string, EntryFile> _latestByPath = new(StringComparer.Ordinal);

    private IngestState(FileStream stream) => _stream = stream;

    public static IngestState Open(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        var state = new IngestState(stream);
        state.Load();
        return state;
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
