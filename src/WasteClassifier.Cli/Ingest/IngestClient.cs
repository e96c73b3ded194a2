using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using WasteClassifier.LoadTesting.Http;

namespace WasteClassifier.Cli.Ingest;

/// <summary>
/// Sends one batch as one multipart <c>POST /v1/classifications</c> (field <c>image</c>, form field <c>source</c>) with an
/// Idempotency-Key derived from the files, retrying network errors, timeouts, 5xx, 408 and 429 with exponential backoff
/// (a Retry-After is honoured). Per-file refusals come back as outcomes; they are final and never retried.
/// </summary>
public sealed class IngestClient(HttpClient http, IngestOptions options, Action<string>? log = null)
{
    public enum Kind { Answered, TooLarge, GaveUp, Fatal }

    /// <summary>The error recorded for a file gone before the API took it.</summary>
    public const string FileMissing = "file_missing";

    /// <summary>The error recorded for a file replaced before its batch was sent again (its new version is a file of its own).</summary>
    public const string FileChanged = "file_changed";

    /// <summary>The error a request under a key the API holds another request under is answered with (422).</summary>
    public const string KeyReused = "idempotency_key_reused";

    /// <param name="Resend">
    /// Files the API did not take in their present content under the batch's key, though it may have taken another version
    /// of them or an empty placeholder in their place: they get no outcome here and go again under <see cref="ContentKeyFor"/>.
    /// </param>
    public sealed record Result(Kind Kind, IReadOnlyList<IngestState.EntryFile> Outcomes, string? Reason = null, IReadOnlyList<IngestFile>? Resend = null);

    public long Retries => Interlocked.Read(ref _retries);
    private long _retries;

    /// <summary>
    /// The HttpClient of <c>wastectl ingest</c>: each request has its own timeout (<see cref="IngestOptions.RequestTimeout"/>),
    /// and a batch's body waits for the API's answer to its headers (see <see cref="PostAsync"/>) up to
    /// <see cref="WastectlHttp.ContinueWait"/>, or half the request timeout when that is shorter, so that a server that
    /// ignores <c>Expect: 100-continue</c> still gets the body in time.
    /// </summary>
    /// <param name="observer">See <see cref="WastectlHttp.CreateClient"/>.</param>
    public static HttpClient CreateHttp(Uri baseAddress, IngestOptions options, string? apiKey = null, DelegatingHandler? observer = null) =>
        WastectlHttp.CreateClient(baseAddress, Timeout.InfiniteTimeSpan, apiKey,
            continueWait: options.RequestTimeout / 2 < WastectlHttp.ContinueWait ? options.RequestTimeout / 2 : WastectlHttp.ContinueWait,
            observer: observer);

    /// <summary>The same files (paths and versions) from the same source always give the same key.</summary>
    public static string KeyFor(string source, IEnumerable<IngestFile> files)
    {
        var text = source + "\n" + string.Join("\n", files.Select(f => f.Key));
        return "ingest-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..48];
    }

    /// <summary>
    /// The key of files that go again because the API took something else under their batch's key: it names their content
    /// too, so no earlier request with other bytes of the same versions used it.
    /// </summary>
    public static string ContentKeyFor(string source, IEnumerable<Part> parts)
    {
        var text = "content\n" + source + "\n" + string.Join("\n", parts.Select(p => p.File.Key + "|" + (p.Bytes is { } bytes ? Convert.ToHexStringLower(SHA256.HashData(bytes)) : "-")));
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
        // Nothing of a failed try's bytes outlives it: the wait for the next, a watcher's wait for its next try and the
        // halves of a batch over the API's limit hold none.
        var result = await WithRetriesAsync(batch.Files.Count, attempt => TryAsync(key, batch, mayReplay || attempt > 1, cancellationToken), batch.Release, cancellationToken);
        if (result.Kind != Kind.Answered) batch.Release();
        return result;
    }

    /// <summary>
    /// Runs <paramref name="tryAsync"/> until it gives a result, waiting between tries as the API asks (Retry-After) or with
    /// backoff, and runs <paramref name="failed"/> after each try that gave none; after the last try, the batch is left for later.
    /// </summary>
    private async Task<Result> WithRetriesAsync(int files, Func<int, Task<(Result? Done, TimeSpan? RetryAfter, string Reason)>> tryAsync, Action failed,
        CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var (done, retryAfter, reason) = await tryAsync(attempt);
            if (done is not null) return done;
            failed();
            if (attempt >= options.MaxAttempts) return new Result(Kind.GaveUp, [], $"{reason} (after {attempt} tries)");
            Interlocked.Increment(ref _retries);
            var delay = retryAfter ?? Backoff(attempt);
            log?.Invoke($"retrying a batch of {files} in {delay.TotalSeconds:0.0} s (try {attempt + 1} of {options.MaxAttempts}): {reason}");
            await Task.Delay(delay, cancellationToken);
        }
    }

    /// <summary>One try: a result, or why it failed and may be tried again.</summary>
    private async Task<(Result? Done, TimeSpan? RetryAfter, string Reason)> TryAsync(string key, Batch batch, bool mayReplay, CancellationToken cancellationToken)
    {
        var parts = await batch.ReadAsync(cancellationToken);
        if (!mayReplay && parts.All(p => p.Bytes is null && p.Unreadable is null)) return (Answered(Map(parts, null, null)), null, "");
        var (answer, failure) = await PostAsync(key, parts, cancellationToken);
        if (answer is not { Status: var status, Body: var body }) return (null, null, failure);
        if (status == 202) return (Answered(Map(parts, body, status)), null, "");
        if (body?["rejected"] is JsonArray && status is 400 or 413) return (Answered(Map(parts, body, status)), null, "");
        if (status == 413) return (new Result(Kind.TooLarge, [], answer.Describe()), null, "");
        if (status == 422 && answer.Error == KeyReused) return (await SortReusedAsync(key, parts, answer.Describe(), cancellationToken), null, "");
        // Any other 4xx is about the request as a whole (bad source, no access): retrying cannot help.
        if (!Transient(status)) return (new Result(Kind.Fatal, [], answer.Describe()), null, "");
        return (null, answer.RetryAfter, answer.Describe());
    }

    /// <summary>
    /// Worth another try: 5xx, 429 (too many requests) and 408 (the request came too slowly: a slow link, not the files).
    /// Any other status without per-file refusals is about the request as a whole (a bad source, no or the wrong key).
    /// </summary>
    private static bool Transient(int status) => status is 408 or 429 or >= 500;

    private static Result Answered((List<IngestState.EntryFile> Outcomes, List<IngestFile> Resend) mapped) =>
        new(Kind.Answered, mapped.Outcomes, Resend: mapped.Resend);

    /// <param name="Redirect">Why a redirect is a failure (<see cref="WastectlHttp.Redirected"/>), naming where it pointed.</param>
    private sealed record Answer(int Status, JsonNode? Body, string Text, TimeSpan? RetryAfter, string? Redirect = null)
    {
        public string? Error => Body?["error"]?.GetValue<string>();

        public string Describe() => Redirect ?? IngestClient.Describe(Status, Body, Text);
    }

    /// <summary>One request of <paramref name="parts"/> under <paramref name="key"/>: the API's answer, or why none came.</summary>
    private async Task<(Answer? Answer, string Failure)> PostAsync(string key, IReadOnlyList<Part> parts, CancellationToken cancellationToken)
    {
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
            // A 3xx is not transient: fatal, as any answer about the request as a whole.
            return (new Answer((int)response.StatusCode, Parse(text), text, RetryAfter(response), WastectlHttp.Redirected(response)), "");
        }
        catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return (null, e is OperationCanceledException ? $"no answer within {options.RequestTimeout.TotalSeconds:0} s" : e.Message);
        }
    }

    /// <summary>
    /// After <c>422 idempotency_key_reused</c>: the API holds another request under this key (a file rewritten since, keeping
    /// its size and time, after its first version went under it; a state file from elsewhere), and stored nothing of this
    /// one. Stopping would wedge the ingester (every restart resends the batch under this key first), and the files cannot
    /// simply go under a new key (the API may hold some of them already). So the API is asked under the key, which costs
    /// a request per file but stores nothing: a request of empty placeholders replays what the original accepted (an empty
    /// file matches any), then each of those files still here goes alone among placeholders, and a replay says the API
    /// holds these bytes (its id is recorded), a 422 that it holds another version. Files the API did not take in their
    /// present content are returned in <see cref="Result.Resend"/>: nothing it accepted goes twice, and nothing it never
    /// had is recorded as answered.
    /// </summary>
    private async Task<Result> SortReusedAsync(string key, IReadOnlyList<Part> parts, string reason, CancellationToken cancellationToken)
    {
        log?.Invoke($"{reason}; asking the API which of the batch's {parts.Count} files it holds under this key");
        var blank = parts.Select(p => p with { Bytes = null }).ToList();
        var original = await AskAsync(key, blank, cancellationToken);
        if (original.Done is not null) return original.Done;
        // No replay: the key holds nothing now (every placeholder refused), or a request of another count or source.
        var held = original.Answer!.Status == 202 ? Items(original.Answer.Body) : [];
        var outcomes = new List<IngestState.EntryFile>();
        var resend = new List<IngestFile>();
        for (var i = 0; i < parts.Count; i++)
        {
            var part = parts[i];
            if (part.Bytes is null)
            {
                if (Placeholder(part, held.TryGetValue(i, out var earlier), earlier) is { } outcome) outcomes.Add(outcome);
                continue;
            }
            if (!held.ContainsKey(i))
            {
                resend.Add(part.File);
                continue;
            }
            var alone = parts.Select((p, j) => j == i ? p : p with { Bytes = null }).ToList();
            var probe = await AskAsync(key, alone, cancellationToken);
            if (probe.Done is not null) return probe.Done;
            var (status, body) = (probe.Answer!.Status, probe.Answer.Body);
            // A replay (or, were the key's rows gone meanwhile, a new request) that accepted these bytes.
            if (status == 202 && Items(body).TryGetValue(i, out var id)) outcomes.Add(Entry(part.File, IngestState.Accepted, id: id));
            // Refused on their own account (only a new request says so).
            else if (Refusals(body).TryGetValue(i, out var refusal)) outcomes.Add(Entry(part.File, IngestState.Refused, error: refusal.Error, message: refusal.Message, status: status));
            // 422: the API accepted another version of this file under the key.
            else resend.Add(part.File);
        }
        log?.Invoke($"of the batch's {parts.Count} files, {outcomes.Count} answered as the API holds them, {resend.Count} to send again under a key of their content");
        return new Result(Kind.Answered, outcomes, Resend: resend);
    }

    /// <summary>
    /// A question under a key the API holds a request under (so it stores nothing: a replay or a 422), retried like any
    /// request: the answer (202, a 400 or 413 listing refusals, 422 idempotency_key_reused), or the result to give up with
    /// (no answer after every try, or an answer about the request as a whole).
    /// </summary>
    private async Task<(Answer? Answer, Result? Done)> AskAsync(string key, IReadOnlyList<Part> parts, CancellationToken cancellationToken)
    {
        Answer? answer = null;
        var done = await WithRetriesAsync(parts.Count, async _ =>
        {
            var (reply, failure) = await PostAsync(key, parts, cancellationToken);
            if (reply is null) return (null, null, failure);
            if (reply.Status == 202 || (reply.Status == 422 && reply.Error == KeyReused) || (reply.Status is 400 or 413 && reply.Body?["rejected"] is JsonArray))
            {
                answer = reply;
                return (new Result(Kind.Answered, []), null, "");
            }
            if (!Transient(reply.Status)) return (new Result(Kind.Fatal, [], reply.Describe()), null, "");
            return (null, reply.RetryAfter, reply.Describe());
        }, () => { }, cancellationToken);
        return answer is null ? (null, done) : (answer, null);
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
    /// <param name="status">The answer's HTTP status, recorded with each refusal (null: no request was sent).</param>
    private static (List<IngestState.EntryFile> Outcomes, List<IngestFile> Resend) Map(IReadOnlyList<Part> files, JsonNode? body, int? status)
    {
        var rejected = Refusals(body);
        var list = (body?["items"] as JsonArray ?? []).Where(i => i is not null).ToList();
        var replayed = body?["replayed"]?.GetValue<bool>() == true;
        var items = list.All(i => i!["index"] is not null)
            ? Items(body)
            // An API from before items carried their index: their order is the files' order, which identifies them unless a
            // replay left refused files out.
            : !replayed || list.Count == files.Count
                ? Enumerable.Range(0, files.Count).Where(i => !rejected.ContainsKey(i)).Zip(list, (i, item) => (i, item)).ToDictionary(p => p.i, p => p.item!["id"]?.GetValue<string>())
                : [];
        var (outcomes, resend) = (new List<IngestState.EntryFile>(files.Count), new List<IngestFile>());
        for (var i = 0; i < files.Count; i++)
        {
            var (file, bytes, _, _) = files[i];
            if (bytes is null)
            {
                if (Placeholder(files[i], items.TryGetValue(i, out var earlier), earlier) is { } outcome) outcomes.Add(outcome);
                continue;
            }
            if (rejected.TryGetValue(i, out var refusal))
                outcomes.Add(Entry(file, IngestState.Refused, error: refusal.Error, message: refusal.Message, status: status));
            else if (items.TryGetValue(i, out var id))
                outcomes.Add(Entry(file, IngestState.Accepted, id: id));
            else if (replayed)
                // The original request refused this file, or carried an empty placeholder in its place (the file was
                // unreadable at that try): a replay does not say which, so it goes again, and is stored or refused on its own.
                resend.Add(file);
            else
                outcomes.Add(Entry(file, IngestState.Refused, error: "no_answer", message: "the API's answer did not cover this file", status: status));
        }
        return (outcomes, resend);
    }

    /// <summary>
    /// The outcome of a file sent as an empty placeholder (gone, changed or unreadable now): accepted when the answer lists
    /// it, a replay of a request that carried its bytes; otherwise the answer is about the placeholder, not the file. None
    /// for an unreadable file, tried again later.
    /// </summary>
    private static IngestState.EntryFile? Placeholder(Part part, bool listed, string? id) =>
        listed ? Entry(part.File, IngestState.Accepted, id: id)
        : part.Changed ? Entry(part.File, IngestState.Refused, error: FileChanged,
            message: "the file was replaced before this batch was sent again; its new version is a file of its own")
        : part.Unreadable is null ? Entry(part.File, IngestState.Refused, error: FileMissing, message: "the file disappeared before it was sent")
        : null;

    /// <summary>The accepted files an answer lists, by their index in the request (answers of APIs that give one).</summary>
    private static Dictionary<int, string?> Items(JsonNode? body) =>
        (body?["items"] as JsonArray ?? []).Where(i => i?["index"] is not null).ToDictionary(i => i!["index"]!.GetValue<int>(), i => i!["id"]?.GetValue<string>());

    private static Dictionary<int, (string? Error, string? Message)> Refusals(JsonNode? body) =>
        (body?["rejected"] as JsonArray ?? []).Where(r => r is not null)
            .ToDictionary(r => r!["index"]!.GetValue<int>(), r => (Error: r!["error"]?.GetValue<string>(), Message: r["message"]?.GetValue<string>()));

    private static IngestState.EntryFile Entry(IngestFile file, string outcome, string? id = null, string? error = null, string? message = null, int? status = null) =>
        new(file.Path, file.Size, file.MtimeTicks, outcome, id, error, message, status);

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
