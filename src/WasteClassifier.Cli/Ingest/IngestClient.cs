using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace WasteClassifier.Cli.Ingest;

/// <summary>
/// Sends one batch as one multipart <c>POST /v1/classifications</c> (field <c>image</c>, form field <c>source</c>) with an
/// Idempotency-Key derived from the files, retrying network errors, timeouts, 5xx and 429 with exponential backoff
/// (a Retry-After is honoured). Per-file refusals come back as outcomes; they are final and never retried.
/// </summary>
public sealed class IngestClient(HttpClient http, IngestOptions options, Action<string>? log = null)
{
    public enum Kind { Answered, TooLarge, GaveUp, Fatal }

    /// <summary>The error recorded for a file gone before the API took it.</summary>
    public const string FileMissing = "file_missing";

    /// <summary>The error recorded for a file replaced before its batch was sent again (its new version is a file of its own).</summary>
    public const string FileChanged = "file_changed";

    public sealed record Result(Kind Kind, IReadOnlyList<IngestState.EntryFile> Outcomes, string? Reason = null);

    public long Retries => Interlocked.Read(ref _retries);
    private long _retries;

    /// <summary>The same files (paths and versions) from the same source always give the same key.</summary>
    public static string KeyFor(string source, IEnumerable<IngestFile> files)
    {
        var text = source + "\n" + string.Join("\n", files.Select(f => f.Key));
        return "ingest-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..48];
    }

    /// <summary>
    /// A file of a batch as read: its bytes, or none because it is gone (answered <c>file_missing</c>), because it is no
    /// longer the version the batch names (<see cref="Changed"/>, answered <c>file_changed</c>), or because it could not be
    /// read (<see cref="Unreadable"/> says why: permissions, a lock, an I/O error). A read error is not a verdict on the
    /// file: it gets no answer here and is tried again later.
    /// </summary>
    public sealed record Part(IngestFile File, byte[]? Bytes, string? Unreadable = null, bool Changed = false);

    public static async Task<IReadOnlyList<Part>> ReadAsync(IReadOnlyList<IngestFile> files, CancellationToken cancellationToken) =>
        await ReadAsync(files, null, cancellationToken);

    private static async Task<IReadOnlyList<Part>> ReadAsync(IReadOnlyList<IngestFile> files, byte[]?[]? hashes, CancellationToken cancellationToken)
    {
        var parts = new List<Part>(files.Count);
        for (var i = 0; i < files.Count; i++) parts.Add(await ReadAsync(files[i], hashes?[i], cancellationToken));
        return parts;
    }

    /// <summary>
    /// The batch's key names each file's version (path, size, time), and the API answers a key it knows with what the
    /// first request under it carried: the bytes of another version must never go under it. So the file's size and time
    /// are checked after the read, and its content against <paramref name="hash"/> where an earlier try read it (a
    /// rewrite can keep both).
    /// </summary>
    private static async Task<Part> ReadAsync(IngestFile file, byte[]? hash, CancellationToken cancellationToken)
    {
        byte[] bytes;
        try
        {
            bytes = await File.ReadAllBytesAsync(file.Path, cancellationToken);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return new Part(file, null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new Part(file, null, e.Message);
        }
        if (IngestFile.Stat(file.Path) is not { } now) return new Part(file, null);
        return now.Size != file.Size || now.MtimeTicks != file.MtimeTicks || bytes.Length != file.Size || (hash is not null && !SHA256.HashData(bytes).AsSpan().SequenceEqual(hash))
            ? new Part(file, null, Changed: true)
            : new Part(file, bytes);
    }

    /// <summary>
    /// The files of one request. Their bytes are read for a try and let go when it fails, so a batch that keeps failing (the
    /// API away, a watcher trying it again every rescan) holds only what identifies each file: the version its key names
    /// and, once read, a SHA-256 of its content. Each try reads the files again and sends only what is still that version.
    /// </summary>
    public sealed class Batch
    {
        private readonly IngestFile[] _files;
        private readonly byte[]?[] _hashes;
        private IReadOnlyList<Part>? _parts;

        /// <summary>A batch of files just read: the first try sends these bytes.</summary>
        public Batch(IReadOnlyList<Part> parts)
        {
            _files = parts.Select(p => p.File).ToArray();
            _hashes = new byte[]?[_files.Length];
            _parts = parts;
        }

        public IReadOnlyList<IngestFile> Files => _files;

        /// <summary>The files as read for the latest try; null between tries.</summary>
        public IReadOnlyList<Part>? Parts => _parts;

        public async Task<IReadOnlyList<Part>> ReadAsync(CancellationToken cancellationToken) =>
            _parts ??= await IngestClient.ReadAsync(_files, _hashes, cancellationToken);

        /// <summary>After a failed try: keeps each file's content hash (computed only here, never on a first try that succeeds), drops its bytes.</summary>
        public void Release()
        {
            if (_parts is null) return;
            for (var i = 0; i < _parts.Count; i++)
                if (_parts[i].Bytes is { } bytes) _hashes[i] ??= SHA256.HashData(bytes);
            _parts = null;
        }
    }

    /// <summary>Sends <paramref name="files"/> as a batch that may have been sent before under <paramref name="key"/>.</summary>
    public async Task<Result> SendAsync(string key, IReadOnlyList<IngestFile> files, CancellationToken cancellationToken) =>
        await SendAsync(key, new Batch(await ReadAsync(files, cancellationToken)), mayReplay: true, cancellationToken);

    /// <summary>
    /// A file that is gone, changed or unreadable is still sent, empty (the API refuses it), so every file keeps its position
    /// in the batch: the indices of an answer, and of a replay after a restart that finds a file gone, always name the same
    /// files. A file the answer names accepted is accepted, gone or not (a replay answers for the bytes an earlier send
    /// carried); otherwise a gone file is answered <c>file_missing</c>, a changed one <c>file_changed</c>, and an unreadable
    /// one gets no outcome. <paramref name="mayReplay"/>: the batch may have reached the API before under this key; only a
    /// batch that cannot have is answered without asking. Bytes are read for each try (see <see cref="Batch"/>).
    /// </summary>
    public async Task<Result> SendAsync(string key, Batch batch, bool mayReplay, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var (done, retryAfter, reason) = await TryAsync(key, batch, mayReplay || attempt > 1, cancellationToken);
            if (done is { Kind: Kind.Answered }) return done;
            // Nothing of this try's bytes outlives it: the wait below, a watcher's wait for its next try and the halves of a
            // batch over the API's limit hold none.
            batch.Release();
            if (done is not null) return done;
            if (attempt >= options.MaxAttempts) return new Result(Kind.GaveUp, [], $"{reason} (after {attempt} tries)");
            Interlocked.Increment(ref _retries);
            var delay = retryAfter ?? Backoff(attempt);
            log?.Invoke($"retrying a batch of {batch.Files.Count} in {delay.TotalSeconds:0.0} s (try {attempt + 1} of {options.MaxAttempts}): {reason}");
            await Task.Delay(delay, cancellationToken);
        }
    }

    /// <summary>One try: a result, or why it failed and may be tried again.</summary>
    private async Task<(Result? Done, TimeSpan? RetryAfter, string Reason)> TryAsync(string key, Batch batch, bool mayReplay, CancellationToken cancellationToken)
    {
        var parts = await batch.ReadAsync(cancellationToken);
        if (!mayReplay && parts.All(p => p.Bytes is null && p.Unreadable is null)) return (new Result(Kind.Answered, Map(parts, null).ToList()), null, "");
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/classifications") { Content = Form(parts) };
            request.Headers.Add("Idempotency-Key", key);
            // A batch over the API's request limit is refused on its headers, before its body is sent, and the 413 cannot
            // be lost to the connection reset that refusing a body in flight can cause.
            request.Headers.ExpectContinue = true;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.RequestTimeout);
            using var response = await http.SendAsync(request, timeout.Token);
            var text = await response.Content.ReadAsStringAsync(timeout.Token);
            var status = (int)response.StatusCode;
            if (response.StatusCode == HttpStatusCode.Accepted) return (new Result(Kind.Answered, Map(parts, Parse(text)).ToList()), null, "");
            var body = Parse(text);
            if (body?["rejected"] is JsonArray && status is 400 or 413)
                return (new Result(Kind.Answered, Map(parts, body).ToList()), null, "");
            if (status == 413) return (new Result(Kind.TooLarge, [], Describe(status, body, text)), null, "");
            // Any other 4xx is about the request as a whole (bad source, no access): retrying cannot help.
            if (status != 429 && status < 500) return (new Result(Kind.Fatal, [], Describe(status, body, text)), null, "");
            return (null, RetryAfter(response), Describe(status, body, text));
        }
        catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return (null, null, e is OperationCanceledException ? $"no answer within {options.RequestTimeout.TotalSeconds:0} s" : e.Message);
        }
    }

    private TimeSpan Backoff(int attempt)
    {
        var exponential = options.RetryBase.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 20));
        // Full jitter in [50 %, 100 %]: many ingesters retrying after one outage do not come back in step.
        var jittered = Math.Min(exponential, options.RetryMax.TotalMilliseconds) * (0.5 + Random.Shared.NextDouble() / 2);
        return TimeSpan.FromMilliseconds(jittered);
    }

    private TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var header = response.Headers.RetryAfter;
        var wait = header?.Delta ?? (header?.Date is { } date ? date - DateTimeOffset.UtcNow : null);
        if (wait is null) return null;
        // Never wait longer than an hour on one header, nor less than nothing.
        return TimeSpan.FromTicks(Math.Clamp(wait.Value.Ticks, 0, TimeSpan.FromHours(1).Ticks));
    }

    private MultipartFormDataContent Form(IReadOnlyList<Part> files)
    {
        var form = new MultipartFormDataContent();
        foreach (var (file, bytes, _, _) in files)
        {
            var part = new ByteArrayContent(bytes ?? []);
            part.Headers.ContentType = new MediaTypeHeaderValue(ContentTypeOf(file.Path));
            form.Add(part, "image", Path.GetFileName(file.Path));
        }
        form.Add(new StringContent(options.Source), "source");
        return form;
    }

    /// <summary>
    /// Items and refusals carry the index of their file in the request. A replay lists only what the original request
    /// accepted, so a file whose index it does not list was refused then; matching by position instead would give a refused
    /// file the id of the next accepted one (and clean it up unclassified).
    /// </summary>
    private static IEnumerable<IngestState.EntryFile> Map(IReadOnlyList<Part> files, JsonNode? body)
    {
        var rejected = (body?["rejected"] as JsonArray ?? []).Where(r => r is not null)
            .ToDictionary(r => r!["index"]!.GetValue<int>(), r => (Error: r!["error"]?.GetValue<string>(), Message: r["message"]?.GetValue<string>()));
        var list = (body?["items"] as JsonArray ?? []).Where(i => i is not null).ToList();
        var replayed = body?["replayed"]?.GetValue<bool>() == true;
        var items = list.All(i => i!["index"] is not null)
            ? list.ToDictionary(i => i!["index"]!.GetValue<int>(), i => i!["id"]?.GetValue<string>())
            // An API from before items carried their index: their order is the files' order, which identifies them unless a
            // replay left refused files out.
            : !replayed || list.Count == files.Count
                ? Enumerable.Range(0, files.Count).Where(i => !rejected.ContainsKey(i)).Zip(list, (i, item) => (i, item)).ToDictionary(p => p.i, p => p.item!["id"]?.GetValue<string>())
                : [];
        for (var i = 0; i < files.Count; i++)
        {
            var (file, bytes, unreadable, changed) = files[i];
            if (bytes is null)
            {
                // Gone, changed or unreadable now, but a replay of a request that carried its bytes accepted it: that answer
                // stands. Any other answer is about the empty placeholder, not the file.
                if (items.TryGetValue(i, out var earlier)) yield return Entry(file, IngestState.Accepted, id: earlier);
                else if (changed)
                    yield return Entry(file, IngestState.Refused, error: FileChanged,
                        message: "the file was replaced before this batch was sent again; its new version is a file of its own");
                else if (unreadable is null) yield return Entry(file, IngestState.Refused, error: FileMissing, message: "the file disappeared before it was sent");
                continue;
            }
            if (rejected.TryGetValue(i, out var refusal))
                yield return Entry(file, IngestState.Refused, error: refusal.Error, message: refusal.Message);
            else if (items.TryGetValue(i, out var id))
                yield return Entry(file, IngestState.Accepted, id: id);
            else
                // A replay does not say why the others were refused.
                yield return Entry(file, IngestState.Refused, error: replayed ? "refused_earlier" : "no_answer",
                    message: replayed ? "refused by the original request of this batch" : "the API's answer did not cover this file");
        }
    }

    private static IngestState.EntryFile Entry(IngestFile file, string outcome, string? id = null, string? error = null, string? message = null) =>
        new(file.Path, file.Size, file.MtimeTicks, outcome, id, error, message);

    private static JsonNode? Parse(string text)
    {
        try
        {
            return JsonNode.Parse(text);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private static string Describe(int status, JsonNode? body, string text)
    {
        var message = body?["message"]?.GetValue<string>() ?? (text.Length > 200 ? text[..200] : text);
        var error = body?["error"]?.GetValue<string>();
        return string.Create(CultureInfo.InvariantCulture, $"HTTP {status}{(error is null ? "" : $" {error}")}: {message}");
    }

    private static string ContentTypeOf(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".jpg" or ".jpeg" => "image/jpeg",
        ".png" => "image/png",
        ".bmp" => "image/bmp",
        ".gif" => "image/gif",
        ".webp" => "image/webp",
        ".tif" or ".tiff" => "image/tiff",
        _ => "application/octet-stream",
    };
}
