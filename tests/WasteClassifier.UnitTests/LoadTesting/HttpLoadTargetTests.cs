using System.Net;
using System.Text;
using System.Text.Json;
using WasteClassifier.LoadTesting;
using WasteClassifier.LoadTesting.Images;
using WasteClassifier.LoadTesting.Reporting;
using WasteClassifier.LoadTesting.Targets;

namespace WasteClassifier.UnitTests.LoadTesting;

public sealed class HttpLoadTargetTests
{
    /// <summary>An API double: every third POST is answered 503 with Retry-After once, GETs complete with timings.</summary>
    private sealed class FakeApi : HttpMessageHandler
    {
        private int _posts;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Method == HttpMethod.Post)
            {
                Assert.Equal("/v1/classifications", request.RequestUri!.AbsolutePath);
                Assert.Equal("multipart/form-data", request.Content!.Headers.ContentType!.MediaType);
                if (Interlocked.Increment(ref _posts) % 3 == 0)
                {
                    var busy = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
                    busy.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(0));
                    return Task.FromResult(busy);
                }
                return Task.FromResult(Json(HttpStatusCode.Accepted, $$"""{"items":[{"id":"{{Guid.NewGuid()}}","status":"queued"}],"rejected":[],"replayed":false}"""));
            }
            return Task.FromResult(Json(HttpStatusCode.OK,
                """{"status":"completed","timings":{"queue_ms":12.5,"inference_ms":40,"total_ms":60.25,"batch_size":8},"error_code":null}"""));
        }

        private static HttpResponseMessage Json(HttpStatusCode status, string body) =>
            new(status) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
    }

    [Fact]
    public async Task Run_ApiThrottlesSome_ThrottledAreRetriedNotFailed()
    {
        var http = new HttpClient(new FakeApi()) { BaseAddress = new Uri("http://localhost/") };
        var options = new LoadTestOptions { Target = http.BaseAddress, Users = 2, MaxRequests = 12, PollInterval = TimeSpan.FromMilliseconds(5) };
        await using var target = new HttpLoadTarget(http, "test");

        var report = LoadReport.From(await new LoadRunner(target, new ImageSet([new TestImage("a.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg")]), options).RunAsync());

        Assert.Equal(12, report.Counts.Completed);
        Assert.Equal(0, report.Counts.Failed);
        Assert.True(report.Counts.Throttled >= 5, $"throttled {report.Counts.Throttled}");
        Assert.Equal(60.25, report.LatencyMs.EndToEnd.P99);
        Assert.Equal(12.5, report.LatencyMs.QueueWait.Max);
    }

    /// <summary>Records each request's X-Api-Key values; accepts a POST and completes a GET.</summary>
    private sealed class KeyRecordingApi : HttpMessageHandler
    {
        public List<(HttpMethod Method, string[] Keys)> Requests { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            lock (Requests) Requests.Add((request.Method, request.Headers.TryGetValues("X-Api-Key", out var keys) ? [.. keys] : []));
            var body = request.Method == HttpMethod.Post
                ? $$"""{"items":[{"id":"{{Guid.NewGuid()}}","status":"queued"}],"rejected":[],"replayed":false}"""
                : """{"status":"completed","timings":{"queue_ms":1,"inference_ms":1,"total_ms":2,"batch_size":1},"error_code":null}""";
            return Task.FromResult(new HttpResponseMessage(request.Method == HttpMethod.Post ? HttpStatusCode.Accepted : HttpStatusCode.OK)
            {
                Content = new StringContent(body, Encoding.UTF8, "application/json"),
            });
        }
    }

    [Fact]
    public async Task Run_WithAnApiKey_SendsItOnSubmissionsAndPollsAndNeverReportsIt()
    {
        // A deployment that requires a key to classify (Auth__RequireKeyForClassification) answered every upload 401.
        var api = new KeyRecordingApi();
        var http = new HttpClient(api) { BaseAddress = new Uri("http://localhost/") };
        var options = new LoadTestOptions { Target = http.BaseAddress, Users = 1, MaxRequests = 3, PollInterval = TimeSpan.FromMilliseconds(5), LongPoll = TimeSpan.Zero };
        await using var target = new HttpLoadTarget(http, "test", options.LongPoll, apiKey: "wc_secret-key");

        var report = LoadReport.From(await new LoadRunner(target, new ImageSet([new TestImage("a.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg")]), options).RunAsync());

        Assert.Equal(3, report.Counts.Completed);
        Assert.Contains(api.Requests, r => r.Method == HttpMethod.Post);
        Assert.Contains(api.Requests, r => r.Method == HttpMethod.Get);
        Assert.All(api.Requests, r => Assert.Equal(["wc_secret-key"], r.Keys));
        Assert.DoesNotContain("wc_secret-key", JsonSerializer.Serialize(report, ReportFiles.Json));
        Assert.DoesNotContain("wc_secret-key", target.Description);
    }

    /// <summary>Answers "queued" to the first GET of each id and "completed" to the next, recording the GETs' queries.</summary>
    private sealed class LongPollApi : HttpMessageHandler
    {
        private readonly HashSet<string> _polledOnce = [];

        public List<string> Queries { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Method == HttpMethod.Post)
                return Task.FromResult(Json($$"""{"items":[{"id":"{{Guid.NewGuid()}}","status":"queued"}]}"""));
            lock (Queries)
            {
                Queries.Add(request.RequestUri!.Query);
                var first = _polledOnce.Add(request.RequestUri.AbsolutePath);
                return Task.FromResult(Json(first ? """{"status":"queued"}""" : """{"status":"completed","timings":{"total_ms":5}}"""));
            }
        }

        private static HttpResponseMessage Json(string body) => new(HttpStatusCode.OK) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
    }

    [Fact]
    public async Task Run_LongPolling_AsksTheApiToWaitAndPollsAgainWithoutPause()
    {
        var api = new LongPollApi();
        var http = new HttpClient(api) { BaseAddress = new Uri("http://localhost/") };
        // A plain-polling pause this long would make the run take minutes.
        var options = new LoadTestOptions { Target = http.BaseAddress, Users = 2, MaxRequests = 6, PollInterval = TimeSpan.FromMinutes(1), LongPoll = TimeSpan.FromSeconds(20) };
        await using var target = new HttpLoadTarget(http, "test", options.LongPoll);
        var started = System.Diagnostics.Stopwatch.StartNew();

        var report = LoadReport.From(await new LoadRunner(target, new ImageSet([new TestImage("a.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg")]), options).RunAsync());

        Assert.Equal(6, report.Counts.Completed);
        Assert.Equal(12, api.Queries.Count);
        Assert.All(api.Queries, q => Assert.Equal("?wait=20", q));
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(30), $"took {started.Elapsed}");
    }

    [Fact]
    public async Task Run_ApiIgnoresTheWait_PollsArePacedNotABusyLoop()
    {
        // Answers "queued" at once to the first five GETs, as a server or proxy that drops ?wait= would.
        var gets = 0;
        var http = new HttpClient(new ScriptedApi((request, _) => Task.FromResult(request.Method == HttpMethod.Post
            ? Answer(HttpStatusCode.Accepted, Queued)
            : Answer(HttpStatusCode.OK, Interlocked.Increment(ref gets) <= 5 ? """{"status":"queued"}""" : """{"status":"completed","timings":{"total_ms":5}}"""))))
        { BaseAddress = new Uri("http://localhost/") };
        var options = new LoadTestOptions { Target = http.BaseAddress, Users = 1, MaxRequests = 1, LongPoll = TimeSpan.FromSeconds(20) };
        await using var target = new HttpLoadTarget(http, "test", options.LongPoll);
        var started = System.Diagnostics.Stopwatch.StartNew();

        var report = LoadReport.From(await new LoadRunner(target, new ImageSet([new TestImage("a.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg")]), options).RunAsync());

        Assert.Equal(1, report.Counts.Completed);
        Assert.Equal(6, gets);
        // Five unheld answers, each followed by a pause of 100 ms (a lower bound: a slow machine only adds to it).
        Assert.True(started.Elapsed >= TimeSpan.FromMilliseconds(450), $"took {started.Elapsed}");
    }

    [Fact]
    public void ReadClassification_Completed_KeepsTheWorkerId() =>
        Assert.Equal("worker-2", HttpLoadTarget.ReadClassification(JsonDocument.Parse(
            """{"status":"completed","worker_id":"worker-2","timings":{"total_ms":5,"batch_size":4}}""").RootElement).Timings!.WorkerId);

    [Fact]
    public void ReadClassification_Failed_ReasonIsTheErrorCode()
    {
        using var body = System.Text.Json.JsonDocument.Parse("""{"status":"failed","error_code":"corrupt_image","timings":{"total_ms":3}}""");
        var answer = HttpLoadTarget.ReadClassification(body.RootElement);
        Assert.Equal(ResponseKind.Failed, answer.Kind);
        Assert.Equal("corrupt_image", answer.Reason);
        Assert.Equal(3, answer.Timings!.TotalMs);
    }

    [Theory]
    [InlineData("""[]""")]
    [InlineData("""{"items":{"id":"x"}}""")]
    [InlineData("""{"items":[{"status":"queued"}]}""")]
    [InlineData("""{"items":[{"id":42}]}""")]
    public void ReadAccepted_AnswerOfAnotherShape_FailsAsInvalidResponse(string body) =>
        Assert.Equal(TargetResponse.Fail("invalid_response"), HttpLoadTarget.ReadAccepted(JsonDocument.Parse(body).RootElement));

    [Theory]
    [InlineData("""{"id":"x"}""")]
    [InlineData("""{"status":3}""")]
    [InlineData("\"completed\"")]
    public void ReadClassification_AnswerOfAnotherShape_FailsAsInvalidResponse(string body) =>
        Assert.Equal(TargetResponse.Fail("invalid_response"), HttpLoadTarget.ReadClassification(JsonDocument.Parse(body).RootElement));

    [Fact]
    public void ReadClassification_FailedWithoutTimings_KeepsItsErrorCode()
    {
        var answer = HttpLoadTarget.ReadClassification(JsonDocument.Parse("""{"status":"failed","timings":null,"error_code":"not_an_image"}""").RootElement);

        Assert.Equal(new TargetResponse(ResponseKind.Failed, Reason: "not_an_image"), answer);
    }

    /// <summary>Answers each request with what the test says: a status and body, or an exception.</summary>
    private sealed class ScriptedApi(Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> answer) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) => answer(request, cancellationToken);
    }

    private static HttpResponseMessage Answer(HttpStatusCode status, string body = "") =>
        new(status) { Content = new StringContent(body, Encoding.UTF8, "application/json") };

    private static readonly string Queued = $$"""{"items":[{"id":"{{Guid.Empty}}","status":"queued"}]}""";

    public static TheoryData<string, Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>>> Failures => new()
    {
        { "http_500_internal_error", (_, _) => Task.FromResult(Answer(HttpStatusCode.InternalServerError, """{"error":"internal_error","message":"boom"}""")) },
        { "http_413", (_, _) => Task.FromResult(Answer(HttpStatusCode.RequestEntityTooLarge, "<html>too large</html>")) },
        { "invalid_json", (_, _) => Task.FromResult(Answer(HttpStatusCode.Accepted, "<html>a proxy's page</html>")) },
        { "connection_error", (_, _) => throw new HttpRequestException(HttpRequestError.ConnectionError, "refused") },
        {
            "connection_refused", (_, _) => throw new HttpRequestException(HttpRequestError.ConnectionError, "refused",
                new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.ConnectionRefused))
        },
        { "timeout", async (_, cancel) => { await Task.Delay(TimeSpan.FromMinutes(5), cancel); return Answer(HttpStatusCode.Accepted); } },
        {
            "poll_http_404_not_found", (request, _) => Task.FromResult(request.Method == HttpMethod.Post
                ? Answer(HttpStatusCode.Accepted, Queued)
                : Answer(HttpStatusCode.NotFound, """{"error":"not_found","message":"no such classification"}"""))
        },
        {
            "not_an_image", (request, _) => Task.FromResult(request.Method == HttpMethod.Post
                ? Answer(HttpStatusCode.Accepted, Queued)
                : Answer(HttpStatusCode.OK, """{"status":"failed","error_code":"not_an_image","timings":{"total_ms":3}}"""))
        },
    };

    /// <summary>No answer from the API: its proxy's 502 or 504, or a connection refused or dropped while it restarts.</summary>
    private static HttpResponseMessage Unavailable(string what) => what switch
    {
        "502" => Answer(HttpStatusCode.BadGateway, "<html>bad gateway</html>"),
        "504" => Answer(HttpStatusCode.GatewayTimeout),
        "refused" => throw new HttpRequestException(HttpRequestError.ConnectionError, "refused"),
        "reset" => throw new HttpRequestException(HttpRequestError.Unknown, "reset", new IOException("reset", new System.Net.Sockets.SocketException(104))),
        _ => throw new HttpRequestException(HttpRequestError.ResponseEnded, "ended"),
    };

    [Fact]
    public async Task Submit_ThrottledWithADate_WaitsUntilThatDateOnTheRunnersClock()
    {
        // The runner's clock reads the Unix epoch plus ten seconds; the API asks to come back at the epoch plus 40 s.
        var clock = new ManualClock();
        clock.Advance(TimeSpan.FromSeconds(10));
        var http = new HttpClient(new ScriptedApi((_, _) =>
        {
            var busy = Answer(HttpStatusCode.TooManyRequests);
            busy.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(DateTimeOffset.UnixEpoch.AddSeconds(40));
            return Task.FromResult(busy);
        }))
        { BaseAddress = new Uri("http://localhost/") };
        await using var target = new HttpLoadTarget(http, "test", time: clock);

        var response = await target.SubmitAsync(new TestImage("a.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg"), CancellationToken.None);

        Assert.Equal(ResponseKind.Throttled, response.Kind);
        Assert.Equal(TimeSpan.FromSeconds(30), response.RetryAfter);
    }

    [Theory]
    [InlineData("502")]
    [InlineData("504")]
    [InlineData("refused")]
    [InlineData("reset")]
    [InlineData("dropped")]
    public async Task Run_PollsUnansweredAWhile_AskedAgainUntilTheResultComes(string what)
    {
        // The API restarts while the images are classified: each one's first two polls get no answer from it.
        var polls = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        var http = new HttpClient(new ScriptedApi((request, _) => Task.FromResult(request.Method == HttpMethod.Post
            ? Answer(HttpStatusCode.Accepted, $$"""{"items":[{"id":"{{Guid.NewGuid()}}","status":"queued"}]}""")
            : polls.AddOrUpdate(request.RequestUri!.AbsolutePath, 1, (_, n) => n + 1) <= 2 ? Unavailable(what) : Answer(HttpStatusCode.OK, """{"status":"completed","timings":{"total_ms":5}}"""))))
        { BaseAddress = new Uri("http://localhost/") };
        var options = new LoadTestOptions { Target = http.BaseAddress, Users = 1, MaxRequests = 2, LongPoll = TimeSpan.Zero, PollInterval = TimeSpan.FromMilliseconds(5) };
        await using var target = new HttpLoadTarget(http, "test");

        var report = LoadReport.From(await new LoadRunner(target, new ImageSet([new TestImage("a.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg")]), options).RunAsync());

        Assert.True(report.Counts.Completed == 2, $"{what}: {string.Join(", ", report.Counts.FailuresByReason)}");
        Assert.All(polls.Values, n => Assert.Equal(3, n));
    }

    [Fact]
    public async Task Run_PollsUnansweredUntilTheDeadline_FailWithTheLastReason()
    {
        var gets = 0;
        var http = new HttpClient(new ScriptedApi((request, _) => Task.FromResult(request.Method == HttpMethod.Post
            ? Answer(HttpStatusCode.Accepted, Queued)
            : Interlocked.Increment(ref gets) == 1 ? Answer(HttpStatusCode.GatewayTimeout) : Answer(HttpStatusCode.BadGateway))))
        { BaseAddress = new Uri("http://localhost/") };
        var options = new LoadTestOptions
        {
            Target = http.BaseAddress,
            Users = 1,
            MaxRequests = 1,
            // Long enough that the one user starts within it on a loaded machine.
            Duration = TimeSpan.FromSeconds(2),
            Drain = TimeSpan.FromSeconds(1),
            LongPoll = TimeSpan.Zero,
            PollInterval = TimeSpan.FromMilliseconds(5),
        };
        await using var target = new HttpLoadTarget(http, "test");

        var result = await new LoadRunner(target, new ImageSet([new TestImage("a.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg")]), options).RunAsync();
        var report = LoadReport.From(result);

        // Asked again until the run's deadline (3 s), then failed as the last poll did, not as unfinished.
        Assert.Equal(new Dictionary<string, int> { ["poll_http_502"] = 1 }, report.Counts.FailuresByReason);
        Assert.Equal(0, report.Counts.Unfinished);
        Assert.True(gets > 2, $"{gets} polls");
        Assert.True(result.Records[0].FinishedS >= 2.9, $"failed at {result.Records[0].FinishedS} s");
    }

    [Theory]
    [InlineData(HttpRequestError.SecureConnectionError, "poll_connection_secureconnectionerror")]
    [InlineData(HttpRequestError.InvalidResponse, "poll_connection_invalidresponse")]
    [InlineData(HttpRequestError.ConfigurationLimitExceeded, "poll_connection_configurationlimitexceeded")]
    [InlineData(HttpRequestError.NameResolutionError, "poll_connection_nameresolutionerror")]
    [InlineData(HttpRequestError.Unknown, "poll_connection_error")]
    public async Task Run_PollFailsInAWayAskingAgainCannotMend_FailsAtOnce(HttpRequestError error, string reason)
    {
        // A certificate refused, an answer this client cannot read, a header over its limit, a name that does not resolve,
        // or an error of no socket's: the same next time, so not asked again until the deadline.
        var gets = 0;
        var http = new HttpClient(new ScriptedApi((request, _) =>
        {
            if (request.Method == HttpMethod.Post) return Task.FromResult(Answer(HttpStatusCode.Accepted, Queued));
            Interlocked.Increment(ref gets);
            throw new HttpRequestException(error, "not this time either");
        }))
        { BaseAddress = new Uri("http://localhost/") };
        var options = new LoadTestOptions
        {
            Target = http.BaseAddress,
            Users = 1,
            MaxRequests = 1,
            // Room for a busy machine to start the user; asked again, the poll would go on until 6 s.
            Duration = TimeSpan.FromSeconds(5),
            Drain = TimeSpan.FromSeconds(1),
            LongPoll = TimeSpan.Zero,
            PollInterval = TimeSpan.FromMilliseconds(5),
        };
        await using var target = new HttpLoadTarget(http, "test");

        var report = LoadReport.From(await new LoadRunner(target, new ImageSet([new TestImage("a.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg")]), options).RunAsync());

        Assert.Equal(new Dictionary<string, int> { [reason] = 1 }, report.Counts.FailuresByReason);
        Assert.Equal(1, gets);
    }

    [Theory]
    [MemberData(nameof(Failures))]
    public async Task Run_RequestFails_CountedUnderItsReason(string reason, Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> answer)
    {
        // A short client timeout only where the answer never comes: on a loaded machine a request that reached the API late
        // was counted as a timeout instead of its own failure.
        var timeout = reason == "timeout" ? TimeSpan.FromMilliseconds(200) : TimeSpan.FromSeconds(30);
        var http = new HttpClient(new ScriptedApi(answer)) { BaseAddress = new Uri("http://localhost/"), Timeout = timeout };
        var options = new LoadTestOptions { Target = http.BaseAddress, Users = 1, MaxRequests = 2, LongPoll = TimeSpan.Zero, PollInterval = TimeSpan.FromMilliseconds(5) };
        await using var target = new HttpLoadTarget(http, "test");

        var report = LoadReport.From(await new LoadRunner(target, new ImageSet([new TestImage("a.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg")]), options).RunAsync());

        Assert.Equal(new Dictionary<string, int> { [reason] = 2 }, report.Counts.FailuresByReason);
        Assert.Equal(2, report.Counts.Failed);
    }

    private sealed class NotReadyApi(string body) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult(new HttpResponseMessage(HttpStatusCode.ServiceUnavailable) { Content = new StringContent(body) });
    }

    [Fact]
    public async Task CheckAnswering_NotReady_SaysWhatTheProbeAnswered()
    {
        // The API's probe checks database, object store and model; the message guessed "database, broker or object store".
        var target = new Uri("http://127.0.0.1:8080/");
        using var http = new HttpClient(new NotReadyApi("""
            {"status":"unhealthy","checks":{"database":{"status":"healthy","description":"Npgsql","duration_ms":1.2},
             "object_store":{"status":"unhealthy","description":"the object store folder is missing","duration_ms":0.3}}}
            """)) { BaseAddress = target };
        // An older build's (or a proxy's) answer that is not the probe's JSON: quoted as it is.
        using var plain = new HttpClient(new NotReadyApi("Unhealthy")) { BaseAddress = target };

        var message = await HttpLoadTarget.CheckAnsweringAsync(http, target, TimeSpan.FromSeconds(5));
        var plainMessage = await HttpLoadTarget.CheckAnsweringAsync(plain, target, TimeSpan.FromSeconds(5));

        Assert.Contains("answered 503 (object_store unhealthy: the object store folder is missing;", message);
        Assert.DoesNotContain("database", message);
        Assert.DoesNotContain("broker", message);
        Assert.Contains("answered 503 (Unhealthy;", plainMessage);
        Assert.Contains("--no-ready-check", message);
    }
}
