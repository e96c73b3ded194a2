using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;
using WasteClassifier.LoadTesting.Http;
using WasteClassifier.LoadTesting.Images;

namespace WasteClassifier.LoadTesting.Targets;

/// <summary>Behaves as a client of the API: multipart POST /v1/classifications, then GET /v1/classifications/{id}.</summary>
/// <param name="longPoll">How long each GET asks the API to wait for the result (<c>?wait=</c>); zero for plain polling.</param>
/// <param name="apiKey">Sent as <c>X-Api-Key</c> on every submission and poll (a deployment that requires a key to classify);
/// never part of the description or the report.</param>
/// <param name="time">The runner's clock, for a Retry-After given as a date (the system's when null).</param>
public sealed class HttpLoadTarget(HttpClient http, string source, TimeSpan longPoll = default, string? apiKey = null, TimeProvider? time = null) : ILoadTarget
{
    public const string ApiKeyHeader = WastectlHttp.ApiKeyHeader;

    public string Description => http.BaseAddress?.ToString() ?? "http";

    public bool PollsWait => longPoll > TimeSpan.Zero;

    public Task PrepareAsync(ImageSet images, CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task<TargetResponse> SubmitAsync(TestImage image, CancellationToken cancellationToken)
    {
        using var form = new MultipartFormDataContent();
        var part = new ByteArrayContent(image.Content);
        part.Headers.ContentType = new MediaTypeHeaderValue(image.ContentType);
        form.Add(part, "image", image.FileName);
        form.Add(new StringContent(source), "source");
        // Unavailable (no answer) is passed on: the runner fails it, never sends it again (the upload may have been accepted
        // before the answer was lost), and backs the user off.
        return await SendAsync(new HttpRequestMessage(HttpMethod.Post, "v1/classifications") { Content = form }, ReadAccepted, cancellationToken);
    }

    /// <summary>The API's readiness probe, asked before the load.</summary>
    public const string ReadinessPath = "health/ready";

    /// <summary>
    /// Whether the target answers, before the load: a target that is down failed every submission at socket speed, and
    /// its report counted thousands of failures of one cause. Null when GET /health/ready answers other than 503 (a
    /// proxy or another build without the probe still answers); otherwise what is wrong, naming the URL.
    /// </summary>
    public static async Task<string?> CheckAnsweringAsync(Uri target, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var http = WastectlHttp.CreateClient(target, timeout);
        return await CheckAnsweringAsync(http, target, timeout, cancellationToken);
    }

    internal static async Task<string?> CheckAnsweringAsync(HttpClient http, Uri target, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        try
        {
            using var response = await http.GetAsync(ReadinessPath, cancellationToken);
            if (WastectlHttp.Redirected(response) is { } redirected) return $"target redirects: {redirected}";
            if (response.StatusCode != HttpStatusCode.ServiceUnavailable) return null;
            // Its answer, not a guess at which component is down (one guessed the broker, which the API's probe does not check).
            var body = (await response.Content.ReadAsStringAsync(cancellationToken)).Trim();
            var answer = FailingChecks(body);
            if (answer is null)
            {
                answer = body.Length == 0 ? "no body" : body;
                if (answer.Length > 500) answer = answer[..500] + "…";
            }
            return $"target not ready at {target}: GET /{ReadinessPath} answered 503 ({answer}; GET /health names each " +
                   "component's state); start what is down or wait until it is ready, or pass --no-ready-check to load it anyway";
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return $"target not answering at {target}: no answer within {timeout.TotalSeconds:0.#} s";
        }
        catch (HttpRequestException e)
        {
            return $"target not answering at {target}: {ConnectionReason(e)} ({e.Message})";
        }
    }

    /// <summary>
    /// The checks of a readiness answer in the API's JSON (<c>{"status", "checks": {"database": {"status", "description"}}}</c>)
    /// that are not healthy, e.g. <c>database unhealthy: the database is unreachable (NpgsqlException: ConnectionRefused)</c>;
    /// null for any other body (an older build's plain "Unhealthy", a proxy's page), which is then quoted as it is.
    /// </summary>
    internal static string? FailingChecks(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            if (json.RootElement.ValueKind != JsonValueKind.Object || !json.RootElement.TryGetProperty("checks", out var checks) || checks.ValueKind != JsonValueKind.Object)
                return null;
            var failing = new List<string>();
            foreach (var check in checks.EnumerateObject())
            {
                var status = check.Value.ValueKind == JsonValueKind.Object && check.Value.TryGetProperty("status", out var s) ? s.ToString() : check.Value.ToString();
                if (status == "healthy") continue;
                var description = check.Value.ValueKind == JsonValueKind.Object && check.Value.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String
                    ? $": {d.GetString()}" : "";
                failing.Add($"{check.Name} {status}{description}");
            }
            var overall = json.RootElement.TryGetProperty("status", out var o) ? o.ToString() : "not ready";
            var text = failing.Count == 0 ? overall : string.Join("; ", failing);
            return text.Length > 500 ? text[..500] + "…" : text;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public async Task<TargetResponse> PollAsync(string id, CancellationToken cancellationToken)
    {
        var query = PollsWait ? FormattableString.Invariant($"?wait={longPoll.TotalSeconds:0.###}") : "";
        var answer = await SendAsync(new HttpRequestMessage(HttpMethod.Get, $"v1/classifications/{id}{query}"), ReadClassification, cancellationToken);
        // A failure of the GET itself (not a failed classification, which carries timings) is named as such.
        return answer is { Kind: ResponseKind.Failed or ResponseKind.Unavailable, Timings: null } ? answer with { Reason = $"poll_{answer.Reason}" } : answer;
    }

    public ValueTask DisposeAsync()
    {
        http.Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task<TargetResponse> SendAsync(HttpRequestMessage request, Func<JsonElement, TargetResponse> read, CancellationToken cancellationToken)
    {
        using var _ = request;
        if (!string.IsNullOrEmpty(apiKey)) request.Headers.Add(ApiKeyHeader, apiKey);
        try
        {
            using var response = await http.SendAsync(request, cancellationToken);
            if (response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable)
                return new TargetResponse(ResponseKind.Throttled, RetryAfter: RetryAfter(response));
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            using var body = TryParse(text);
            if (!response.IsSuccessStatusCode)
            {
                var reason = $"http_{(int)response.StatusCode}" + (WastectlHttp.Redirected(response) is not null ? "_redirect"
                    : body?.RootElement.TryGetProperty("error", out var error) == true ? $"_{error}" : "");
                // A proxy's answer while the API behind it restarts or is slow: not the API's verdict.
                return response.StatusCode is HttpStatusCode.BadGateway or HttpStatusCode.GatewayTimeout
                    ? new TargetResponse(ResponseKind.Unavailable, Reason: reason)
                    : TargetResponse.Fail(reason);
            }
            return body is null ? TargetResponse.Fail("invalid_json") : read(body.RootElement);
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new TargetResponse(ResponseKind.Unavailable, Reason: "timeout");
        }
        catch (HttpRequestException e)
        {
            var reason = ConnectionReason(e);
            return IsTransient(e) ? new TargetResponse(ResponseKind.Unavailable, Reason: reason) : TargetResponse.Fail(reason);
        }
    }

    /// <summary>
    /// The failure's name: the socket's error where there is one (<c>connection_refused</c>, <c>connection_reset</c>,
    /// <c>connection_host_unreachable</c>), else the client's (<c>connection_error</c>, <c>connection_secureconnectionerror</c>).
    /// </summary>
    internal static string ConnectionReason(HttpRequestException e)
    {
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
            if (inner is SocketException socket)
            {
                var name = System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(socket.SocketErrorCode.ToString());
                return name.StartsWith("connection_", StringComparison.Ordinal) ? name : $"connection_{name}";
            }
        return e.HttpRequestError is HttpRequestError.Unknown or HttpRequestError.ConnectionError ? "connection_error" : $"connection_{e.HttpRequestError}".ToLowerInvariant();
    }

    /// <summary>
    /// Whether asking again may get an answer: a connection refused, reset or dropped (an API restarting). A certificate,
    /// a name that does not resolve, an answer this client cannot read or a limit of its own will be the same next time.
    /// </summary>
    private static bool IsTransient(HttpRequestException e) => e.HttpRequestError switch
    {
        HttpRequestError.ConnectionError or HttpRequestError.ResponseEnded => true,
        HttpRequestError.Unknown => e.InnerException is IOException or SocketException,
        _ => false,
    };

    // A 2xx answer this client cannot read (another service on the port, a proxy's page) fails the request as
    // invalid_response; it never throws out of the run.
    internal static TargetResponse ReadAccepted(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object || !body.TryGetProperty("items", out var items) || items.ValueKind != JsonValueKind.Array)
            return TargetResponse.Fail("invalid_response");
        if (items.GetArrayLength() == 0) return TargetResponse.Fail("rejected");
        return items[0].ValueKind == JsonValueKind.Object && items[0].TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String
            ? new TargetResponse(ResponseKind.Accepted, Id: id.GetString())
            : TargetResponse.Fail("invalid_response");
    }

    internal static TargetResponse ReadClassification(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object || !body.TryGetProperty("status", out var statusValue) || statusValue.ValueKind != JsonValueKind.String)
            return TargetResponse.Fail("invalid_response");
        var status = statusValue.GetString();
        if (status is not ("completed" or "failed")) return TargetResponse.Pending;
        var timings = body.TryGetProperty("timings", out var t) && t.ValueKind == JsonValueKind.Object ? new ServerTimings(Number(t, "queue_ms"), Number(t, "inference_ms"), Number(t, "total_ms"), (int?)Number(t, "batch_size"),
            body.TryGetProperty("worker_id", out var worker) && worker.ValueKind == JsonValueKind.String ? worker.GetString() : null) : null;
        return status == "completed"
            ? new TargetResponse(ResponseKind.Completed, Timings: timings)
            : new TargetResponse(ResponseKind.Failed, Reason: body.TryGetProperty("error_code", out var code) && code.ValueKind == JsonValueKind.String ? code.GetString() : "failed", Timings: timings);
    }

    private static double? Number(JsonElement parent, string name) =>
        parent.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : null;

    private static JsonDocument? TryParse(string text)
    {
        try
        {
            return text.Length == 0 ? null : JsonDocument.Parse(text);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    // A date is measured against the runner's clock, so the wait matches the one the runner keeps.
    private TimeSpan? RetryAfter(HttpResponseMessage response) =>
        response.Headers.RetryAfter?.Delta
        ?? (response.Headers.RetryAfter?.Date is { } date ? date - (time ?? TimeProvider.System).GetUtcNow() : null);
}
