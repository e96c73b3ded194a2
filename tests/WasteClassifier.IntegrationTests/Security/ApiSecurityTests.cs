using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Cli.Ingest;
using WasteClassifier.Infrastructure.Security;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Security;

/// <summary>API keys, admin-only routes, the embedded default's loopback rule, rate limits and request limits.</summary>
public sealed class ApiSecurityTests(ApiSecurityTests.KeyedApi keyed, ApiSecurityTests.BoundApi bound)
    : IAsyncLifetime, IClassFixture<ApiSecurityTests.KeyedApi>, IClassFixture<ApiSecurityTests.BoundApi>
{
    /// <summary>One API with an admin and a client key, shared by the route tests (each API start costs seconds).</summary>
    public class KeyedApi : IAsyncLifetime
    {
        private readonly ApiSecurityTests _owner = new(null!, null!);
        public HttpClient Http { get; private set; } = null!;

        protected virtual bool Bound => false;

        public Task InitializeAsync()
        {
            Http = _owner.Start(bound: Bound).CreateClient();
            return Task.CompletedTask;
        }

        public Task DisposeAsync() => _owner.DisposeAsync();
    }

    /// <summary>The same keys and two bound to sources, which needs a key for every client call.</summary>
    public sealed class BoundApi : KeyedApi
    {
        protected override bool Bound => true;
    }

    private const string AdminKey = "wc_test-admin-key-0123456789abcdefghijklmnopqrstuv";
    private const string ClientKey = "wc_test-client-key-0123456789abcdefghijklmnopqrstu";
    private const string BoundKey = "wc_test-bound-key-0123456789abcdefghijklmnopqrstuv";
    private const string HallKey = "wc_test-hall-key-0123456789abcdefghijklmnopqrstuvw";
    private static readonly byte[] Garbage = Enumerable.Range(0, 3000).Select(i => (byte)(i * 7919 % 251)).ToArray();

    private readonly List<IAsyncDisposable> _factories = [];
    private readonly List<string> _directories = [];

    /// <summary>Every admin route: none may run without an admin key once keys are configured.</summary>
    public static TheoryData<string, string> AdminRoutes => new()
    {
        { "POST", "/v1/training-jobs" },
        { "DELETE", $"/v1/training-jobs/{Guid.NewGuid()}" },
        { "DELETE", $"/v1/samples/{Guid.NewGuid()}" },
        { "POST", "/v1/samples" },
        { "POST", "/retrain" },
        { "PUT", $"/v1/classifications/{Guid.NewGuid()}/label" },
        { "POST", "/v1/models/no-such-version/promote" },
        { "POST", "/v1/models/no-such-version/rollback" },
    };

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var factory in _factories) await factory.DisposeAsync();
        foreach (var directory in _directories)
            try { Directory.Delete(directory, recursive: true); } catch (IOException) { }
    }

    private ApiFactory Start(Dictionary<string, string?>? extra = null, bool keys = true, bool bound = false, Action<IServiceCollection>? services = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", Guid.NewGuid().ToString("N"));
        _directories.Add(directory);
        var settings = new Dictionary<string, string?>
        {
            ["DataDirectory"] = directory,
            ["Uploads:MaxFileBytes"] = "1048576",
            ["Uploads:MaxRequestBytes"] = "2097152",
            ["Worker:Id"] = "security-worker",
        };
        if (keys)
        {
            settings["Auth:Keys:0:Name"] = "ops";
            settings["Auth:Keys:0:Role"] = "admin";
            settings["Auth:Keys:0:Hash"] = ApiKeys.Hash(AdminKey);
            settings["Auth:Keys:1:Name"] = "line-3";
            settings["Auth:Keys:1:Role"] = "client";
            settings["Auth:Keys:1:Hash"] = ApiKeys.Hash(ClientKey)[ApiKeys.HashPrefix.Length..]; // bare hex works too
        }
        if (bound)
        {
            // A binding holds only while a caller without a key is refused (the API refuses to start otherwise).
            settings["Auth:RequireKeyForClassification"] = "true";
            settings["Auth:Keys:2:Name"] = "line-3-camera";
            settings["Auth:Keys:2:Hash"] = ApiKeys.Hash(BoundKey);
            settings["Auth:Keys:2:Sources:0"] = "line-3";
            settings["Auth:Keys:3:Name"] = "hall-b";
            settings["Auth:Keys:3:Hash"] = ApiKeys.Hash(HallKey);
            settings["Auth:Keys:3:Sources:0"] = "hall-b/*";
            settings["Auth:Keys:3:Sources:1"] = "line-9";
        }
        foreach (var (k, v) in extra ?? []) settings[k] = v;
        var factory = new ApiFactory(settings, services);
        _factories.Add(factory);
        return factory;
    }

    [Fact]
    public async Task Submit_KeyBoundToSources_SubmitsOnlyAsThoseAndUnboundKeysAsAny()
    {
        var photo = File.ReadAllBytes(Dataset.Sample(1)[0].Path);
        async Task<(HttpStatusCode Status, JsonNode Body)> SubmitAsync(string? key, string? source)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/classifications") { Content = ClassifierClient.Form([("a.jpg", photo)], source) };
            if (key is not null) request.Headers.Add("X-Api-Key", key);
            var (status, body, _) = await SendAsync(bound.Http, request);
            return (status, body);
        }

        // Another line's source: refused, naming the allowed ones; the walkthrough's line-3 key counted in line-1.
        var (status, body) = await SubmitAsync(BoundKey, "line-1");
        Assert.Equal((HttpStatusCode.Forbidden, "source_not_allowed"), (status, body["error"]!.GetValue<string>()));
        Assert.Contains("line-3", body["message"]!.GetValue<string>());
        // Its own source, or none (then its one source).
        foreach (var source in new[] { "line-3", null })
        {
            (status, body) = await SubmitAsync(BoundKey, source);
            Assert.True(status == HttpStatusCode.Accepted, body.ToJsonString());
            using var get = new HttpRequestMessage(HttpMethod.Get, $"/v1/classifications/{body["items"]![0]!["id"]}");
            get.Headers.Add("X-Api-Key", BoundKey);
            var (_, row, _) = await SendAsync(bound.Http, get);
            Assert.Equal("line-3", row!["source"]!.GetValue<string>());
        }
        // A prefix, and a key with several sources must say which.
        Assert.Equal(HttpStatusCode.Accepted, (await SubmitAsync(HallKey, "hall-b/cam-2")).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await SubmitAsync(HallKey, "hall-c/cam-2")).Status);
        (status, body) = await SubmitAsync(HallKey, null);
        Assert.Equal((HttpStatusCode.BadRequest, "source_required"), (status, body["error"]!.GetValue<string>()));
        // Direct uploads too.
        using var create = new HttpRequestMessage(HttpMethod.Post, "/v1/uploads") { Content = JsonContent.Create(new { count = 1, source = "line-1" }) };
        create.Headers.Add("X-Api-Key", BoundKey);
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(bound.Http, create)).Status);
        // An unbound key submits as any source, as before.
        Assert.Equal(HttpStatusCode.Accepted, (await SubmitAsync(ClientKey, "line-1")).Status);
        // Leaving the key off is no way around the binding: the line-3 camera submitted as line-1 without one.
        Assert.Equal(HttpStatusCode.Unauthorized, (await SubmitAsync(null, "line-1")).Status);
    }

    /// <summary><paramref name="request"/> sent to the bound fixture with <paramref name="key"/>.</summary>
    private async Task<(HttpStatusCode Status, JsonNode Body)> SendBoundAsync(HttpRequestMessage request, string key)
    {
        using (request)
        {
            request.Headers.Add("X-Api-Key", key);
            var (status, body, _) = await SendAsync(bound.Http, request);
            return (status, body);
        }
    }

    [Fact]
    public async Task Predict_KeyBoundToAPrefix_GivesItsSourceInTheForm()
    {
        var photo = File.ReadAllBytes(Dataset.Sample(1)[1].Path);
        HttpRequestMessage Predict(string? source) =>
            new(HttpMethod.Post, "/predict") { Content = ClassifierClient.Form([("a.jpg", photo)], source) };

        // Without one it must say which; /predict read no source field, so such a key could never use it.
        var (status, body) = await SendBoundAsync(Predict(null), HallKey);
        Assert.Equal((HttpStatusCode.BadRequest, "source_required"), (status, body["error"]!.GetValue<string>()));
        (status, body) = await SendBoundAsync(Predict("hall-c/cam-1"), HallKey);
        Assert.Equal((HttpStatusCode.Forbidden, "source_not_allowed"), (status, body["error"]!.GetValue<string>()));
        (status, body) = await SendBoundAsync(Predict("bad source!"), HallKey);
        Assert.Equal((HttpStatusCode.BadRequest, "invalid_source"), (status, body["error"]!.GetValue<string>()));

        (status, body) = await SendBoundAsync(Predict("hall-b/cam-1"), HallKey);
        Assert.True(status == HttpStatusCode.OK, body.ToJsonString());
        var (_, row) = await SendBoundAsync(new HttpRequestMessage(HttpMethod.Get, $"/v1/classifications/{body["id"]}"), HallKey);
        Assert.Equal("hall-b/cam-1", row["source"]!.GetValue<string>());
    }

    [Fact]
    public async Task Commit_KeyBoundToAPrefixWithoutSource_EachUploadKeepsTheSourceItWasCreatedWith()
    {
        var photos = Dataset.Sample(1).Skip(6).Take(2).Select(s => File.ReadAllBytes(s.Path)).ToList();
        async Task<(Guid Id, string Url)> CreateAsync(string key, string source)
        {
            var (status, created) = await SendBoundAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/uploads") { Content = JsonContent.Create(new { count = 1, source }) }, key);
            Assert.True(status == HttpStatusCode.Created, created.ToJsonString());
            var upload = created["uploads"]![0]!;
            return (Guid.Parse(upload["id"]!.GetValue<string>()), upload["url"]!.GetValue<string>());
        }
        var own = await CreateAsync(HallKey, "hall-b/cam-2");
        var other = await CreateAsync(ClientKey, "line-1"); // an unbound key's upload, its id passed on
        foreach (var ((_, url), photo) in new[] { own, other }.Zip(photos))
            Assert.Equal(HttpStatusCode.OK, (await SendBoundAsync(new HttpRequestMessage(HttpMethod.Put, url) { Content = new ByteArrayContent(photo) }, HallKey)).Status);

        // The commit names no source: each upload's own passed the binding when it was created (this commit was a 400
        // source_required), and one created as a source the key may not submit as is refused, not re-labelled.
        var (status, body) = await SendBoundAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/uploads/commit") { Content = JsonContent.Create(new { ids = new[] { own.Id, other.Id } }) }, HallKey);
        Assert.True(status == HttpStatusCode.Accepted, body.ToJsonString());
        var items = body["items"]!.AsArray();
        Assert.Equal("accepted", items[0]!["status"]!.GetValue<string>());
        Assert.Equal(("refused", "source_not_allowed"), (items[1]!["status"]!.GetValue<string>(), items[1]!["error"]!.GetValue<string>()));
        var (_, row) = await SendBoundAsync(new HttpRequestMessage(HttpMethod.Get, $"/v1/classifications/{items[0]!["classification_id"]}"), HallKey);
        Assert.Equal("hall-b/cam-2", row["source"]!.GetValue<string>());
    }

    private static HttpRequestMessage Request(string method, string url, string? key = null, bool bearer = false)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), url);
        if (method is "POST" or "PUT")
            request.Content = url.EndsWith("/label", StringComparison.Ordinal)
                ? new StringContent("{\"label\":\"glass\"}", Encoding.UTF8, "application/json")
                : ClassifierClient.Form([("x.jpg", Garbage)], field: url.Contains("training") || url.Contains("retrain") ? "images" : "image");
        if (key is not null)
        {
            if (bearer) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            else request.Headers.Add("X-Api-Key", key);
        }
        return request;
    }

    private static async Task<(HttpStatusCode Status, JsonNode Body, HttpResponseMessage Response)> SendAsync(HttpClient http, HttpRequestMessage request)
    {
        var response = await http.SendAsync(request);
        return (response.StatusCode, await ClassifierClient.ReadJsonAsync(response), response);
    }

    [Theory]
    [MemberData(nameof(AdminRoutes))]
    public async Task AdminRoute_WithoutKey_401Json(string method, string url)
    {
        var http = keyed.Http;
        var (status, body, response) = await SendAsync(http, Request(method, url));
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("unauthorized", body["error"]!.GetValue<string>());
        Assert.Contains("admin", body.ToJsonString());
        Assert.NotEmpty(response.Headers.WwwAuthenticate);
    }

    [Theory]
    [MemberData(nameof(AdminRoutes))]
    public async Task AdminRoute_ClientKey_403Json(string method, string url)
    {
        var http = keyed.Http;
        var (status, body, _) = await SendAsync(http, Request(method, url, ClientKey));
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("forbidden", body["error"]!.GetValue<string>());
        Assert.Contains("line-3", body["message"]!.GetValue<string>());
    }

    [Theory]
    [MemberData(nameof(AdminRoutes))]
    public async Task AdminRoute_AdminKey_PassesToTheEndpoint(string method, string url)
    {
        var http = keyed.Http;
        // X-Api-Key and Authorization: Bearer are both accepted.
        foreach (var bearer in new[] { false, true })
        {
            var (status, _, _) = await SendAsync(http, Request(method, url, AdminKey, bearer));
            Assert.NotEqual(HttpStatusCode.Unauthorized, status);
            Assert.NotEqual(HttpStatusCode.Forbidden, status);
        }
    }

    [Fact]
    public async Task AnyRoute_WrongKey_401InvalidApiKey()
    {
        var http = Start(new() { ["Auth:RequireKeyForClassification"] = "true" }).CreateClient();
        var (status, body, _) = await SendAsync(http, Request("GET", "/v1/classifications", "wc_wrong"));
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("invalid_api_key", body["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Classification_KeyRequiredByConfiguration_NeedsAnyValidKey()
    {
        var http = Start(new() { ["Auth:RequireKeyForClassification"] = "true" }).CreateClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(http, Request("POST", "/v1/classifications"))).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(http, Request("GET", "/v1/classifications"))).Status);
        // Past authorization: the garbage file is refused by the image check, not by the key check.
        var (status, body, _) = await SendAsync(http, Request("POST", "/v1/classifications", ClientKey));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("not_an_image", body["error"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(http, Request("GET", "/v1/classifications", AdminKey))).Status);
        // The description, class names and the original health check stay open for monitors.
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/classes")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task Classification_OpenByDefault_NoKeyNeeded()
    {
        var http = keyed.Http;
        var (status, body, _) = await SendAsync(http, Request("POST", "/v1/classifications"));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("not_an_image", body["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task IdempotencyKey_ScopedToTheCallerAndToItsRequest()
    {
        var http = keyed.Http;
        var images = Dataset.Sample(1).Skip(3).Take(2).Select(s => File.ReadAllBytes(s.Path)).ToList();
        var key = $"frame-{Guid.NewGuid():N}";
        async Task<(HttpStatusCode Status, JsonNode Body)> SubmitAsync(string? apiKey, byte[] image, string source = "cam-1")
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/classifications") { Content = ClassifierClient.Form([("frame.jpg", image)], source) };
            request.Headers.Add("Idempotency-Key", key);
            if (apiKey is not null) request.Headers.Add("X-Api-Key", apiKey);
            var (code, json, _) = await SendAsync(http, request);
            return (code, json);
        }
        string Id(JsonNode body) => body["items"]![0]!["id"]!.GetValue<string>();

        var first = await SubmitAsync(ClientKey, images[0]);
        Assert.Equal(HttpStatusCode.Accepted, first.Status);

        // Another caller's request under the same key is its own: it was answered replayed with the first one's id, and
        // its frame never stored. So is an anonymous caller's.
        foreach (var other in new[] { AdminKey, null })
        {
            var (status, body) = await SubmitAsync(other, images[1]);
            Assert.Equal(HttpStatusCode.Accepted, status);
            Assert.False(body["replayed"]!.GetValue<bool>());
            Assert.NotEqual(Id(first.Body), Id(body));
        }

        // The same caller repeating its request gets its answer again; the key on another request is refused.
        var repeat = await SubmitAsync(ClientKey, images[0]);
        Assert.True(repeat.Body["replayed"]!.GetValue<bool>());
        Assert.Equal(Id(first.Body), Id(repeat.Body));
        foreach (var (image, source) in new[] { (images[1], "cam-1"), (images[0], "cam-2") })
        {
            var (status, body) = await SubmitAsync(ClientKey, image, source);
            Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
            Assert.Equal("idempotency_key_reused", body["error"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task EmbeddedDefault_NoKeys_AdminFromLoopbackOnly()
    {
        var factory = Start(keys: false);
        var local = factory.CreateClient();
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(local, Request("POST", "/v1/models/no-such-version/promote"))).Status);

        // The same call arriving from the plant network (remote address) is refused.
        var remote = factory.WithWebHostBuilder(b => b.ConfigureServices(s => s.AddSingleton<Microsoft.AspNetCore.Hosting.IStartupFilter>(new RemoteAddress()))).CreateClient();
        var (status, body, _) = await SendAsync(remote, Request("POST", "/v1/models/no-such-version/promote"));
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Contains("loopback", body["message"]!.GetValue<string>());
        // Classification stays open to it.
        Assert.Equal(HttpStatusCode.BadRequest, (await SendAsync(remote, Request("POST", "/v1/classifications"))).Status);
    }

    [Fact]
    public async Task EmbeddedDefault_NoKeys_AdminRefusedUnderAForeignHostOrThroughAProxy()
    {
        // A page under a DNS name rebound to 127.0.0.1 arrives on loopback, with its own name as Host: refused before
        // anything (UnexpectedHosts), and, were the name listed in Security:AllowedHosts, still no admin.
        var local = Start(keys: false).CreateClient();
        const string promote = "/v1/models/no-such-version/promote";
        var (status, body, _) = await SendAsync(local, Request("POST", $"http://rebound.example:8080{promote}"));
        Assert.Equal(HttpStatusCode.MisdirectedRequest, status);
        var listed = Start(keys: false, extra: new() { ["Security:AllowedHosts:0"] = "rebound.example" }).CreateClient();
        (status, body, _) = await SendAsync(listed, Request("POST", $"http://rebound.example:8080{promote}"));
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Contains("Host is 'rebound.example:8080'", body["message"]!.GetValue<string>());

        // A proxy on this machine makes every client look local: its forwarding header refuses the loopback rule.
        using var proxied = Request("POST", promote);
        proxied.Headers.Add("X-Forwarded-For", "203.0.113.7");
        (status, body, _) = await SendAsync(local, proxied);
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Contains("proxy (header X-Forwarded-For)", body["message"]!.GetValue<string>());

        // Loopback names, any port, reach the endpoint (404: no such version).
        foreach (var origin in new[] { "http://localhost", "http://127.0.0.1:8080", "http://[::1]:8080" })
            Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(local, Request("POST", origin + promote))).Status);
    }

    [Fact]
    public async Task CrossSite_WriteFromAnotherOrigin_403JsonBeforeAnyWork()
    {
        var http = Start(keys: false, extra: new() { ["Security:AllowedOrigins:0"] = "https://ui.example.com" }).CreateClient();
        const string promote = "/v1/models/no-such-version/promote";
        async Task<(HttpStatusCode Status, JsonNode Body)> SendFromAsync(string method, string url, string? origin, string? fetchSite = null)
        {
            using var request = Request(method, url);
            if (origin is not null) request.Headers.Add("Origin", origin);
            if (fetchSite is not null) request.Headers.Add("Sec-Fetch-Site", fetchSite);
            var (code, json, _) = await SendAsync(http, request);
            return (code, json);
        }

        var (status, body) = await SendFromAsync("POST", promote, "http://evil.example");
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("cross_site_request", body["error"]!.GetValue<string>());
        Assert.Contains("'http://evil.example'", body["message"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.Forbidden, (await SendFromAsync("POST", promote, null, "cross-site")).Status);
        // Client routes too; /predict's errors keep its success: false.
        Assert.Equal(HttpStatusCode.Forbidden, (await SendFromAsync("POST", "/v1/classifications", "http://evil.example")).Status);
        (status, body) = await SendFromAsync("POST", "/predict", "http://evil.example");
        Assert.Equal((HttpStatusCode.Forbidden, false), (status, body["success"]!.GetValue<bool>()));

        // The service's own pages, the allowed origin and clients without Origin reach the endpoint (404: no such version).
        Assert.Equal(HttpStatusCode.NotFound, (await SendFromAsync("POST", promote, "http://localhost", "same-origin")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await SendFromAsync("POST", promote, "https://ui.example.com", "cross-site")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await SendFromAsync("POST", promote, null)).Status);
        // Reads are not refused.
        Assert.Equal(HttpStatusCode.OK, (await SendFromAsync("GET", "/v1/classifications", "http://evil.example", "cross-site")).Status);
    }

    [Fact]
    public async Task Responses_CarryTheSecurityHeaders_TheReferenceItsOwnPolicy()
    {
        var http = keyed.Http;
        using var page = new HttpRequestMessage(HttpMethod.Get, "/");
        page.Headers.Accept.ParseAdd("text/html");
        var responses = new[]
        {
            await http.SendAsync(page),                                   // the web interface
            await http.GetAsync("/js/app.js"),                            // its files
            await http.GetAsync("/v1/classifications"),                   // JSON
            await http.GetAsync("/no-such-route"),                        // an error
            (await SendAsync(http, Request("POST", "/retrain"))).Response, // a refusal
        };
        foreach (var response in responses)
        {
            var where = $"{response.RequestMessage!.Method} {response.RequestMessage.RequestUri} ({(int)response.StatusCode})";
            Assert.True(response.Headers.TryGetValues("X-Content-Type-Options", out var sniff) && sniff.Single() == "nosniff", where);
            Assert.True(response.Headers.TryGetValues("X-Frame-Options", out var frame) && frame.Single() == "DENY", where);
            Assert.True(response.Headers.TryGetValues("Referrer-Policy", out var referrer) && referrer.Single() == "same-origin", where);
            Assert.True(response.Headers.TryGetValues("Content-Security-Policy", out var csp), where);
            Assert.Contains("default-src 'self'", csp!.Single());
            Assert.Contains("frame-ancestors 'none'", csp!.Single());
        }
        Assert.Contains("<html", await responses[0].Content.ReadAsStringAsync());

        // Scalar's page runs an inline script: it is only kept out of frames.
        var reference = await http.GetAsync("/scalar/v1");
        Assert.Equal(HttpStatusCode.OK, reference.StatusCode);
        Assert.Equal("frame-ancestors 'none'", reference.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal("nosniff", reference.Headers.GetValues("X-Content-Type-Options").Single());
    }

    [Fact]
    public async Task RateLimit_OverTheBurst_429WithRetryAfterAndJson()
    {
        var http = Start(new() { ["RateLimit:ExemptLoopback"] = "false", ["RateLimit:Burst"] = "3", ["RateLimit:PerSecond"] = "1" }).CreateClient();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 10 && limited is null; i++)
        {
            var response = await http.GetAsync("/classes");
            if (response.StatusCode == HttpStatusCode.TooManyRequests) limited = response;
        }
        Assert.NotNull(limited);
        Assert.True(limited.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        var body = await ClassifierClient.ReadJsonAsync(limited);
        Assert.Equal("rate_limited", body["error"]!.GetValue<string>());
        // Another key is another partition: still served.
        var request = new HttpRequestMessage(HttpMethod.Get, "/classes");
        request.Headers.Add("X-Api-Key", ClientKey);
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(request)).StatusCode);
    }

    [Fact]
    public async Task Keys_NeverLogged()
    {
        var output = new StringWriter();
        var original = Console.Out;
        Console.SetOut(TextWriter.Synchronized(output));
        try
        {
            var http = Start(new() { ["Logging:Format"] = "json" }).CreateClient();
            await SendAsync(http, Request("POST", "/v1/models/no-such-version/promote", AdminKey));
            await SendAsync(http, Request("POST", "/v1/models/no-such-version/promote", ClientKey, bearer: true));
            await SendAsync(http, Request("GET", "/v1/classifications", "wc_wrong-key-value"));
        }
        finally
        {
            Console.SetOut(original);
        }
        var text = output.ToString();
        Assert.DoesNotContain(AdminKey, text);
        Assert.DoesNotContain(ClientKey, text);
        Assert.DoesNotContain("wc_wrong-key-value", text);
    }

    [Fact]
    public void MalformedKeyHash_StopsTheProcessAtStart()
    {
        var factory = Start(new() { ["Auth:Keys:0:Hash"] = "not-a-hash" });
        var error = Assert.ThrowsAny<Exception>(() => factory.CreateClient());
        Assert.Contains("Auth:Keys:0:Hash", error.ToString());
    }

    [Fact]
    public async Task Body_OverTheRequestLimit_413()
    {
        // Kestrel enforces the whole-body limit (Uploads:MaxRequestBytes, 2 MB here); the in-memory test server would not.
        var factory = Start();
        factory.UseKestrel(0);
        factory.StartServer();
        using var kestrel = factory.CreateDefaultClient();
        // A real HTTP client for the Kestrel address. It waits for the answer to the headers up to a minute, not HttpClient's
        // 1 s, after which it sends the body anyway: a cold test host on a loaded CI machine can take longer to answer.
        using var http = new HttpClient(new SocketsHttpHandler { Expect100ContinueTimeout = TimeSpan.FromMinutes(1) }) { BaseAddress = kestrel.BaseAddress };
        var files = Enumerable.Range(0, 3).Select(i => ($"{i}.jpg", new byte[900_000]));
        // As a careful client sends a large body: the 413 then comes before any of it. Without it the answer races the
        // upload, and the server, closing a connection with unread bytes, can reset it before the client reads the 413.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/classifications") { Content = ClassifierClient.Form(files) };
        request.Headers.ExpectContinue = true;
        var response = await http.SendAsync(request);
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.True(response.StatusCode == HttpStatusCode.RequestEntityTooLarge, body.ToJsonString());
        Assert.Equal("request_too_large", body["error"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("POST", "/v1/uploads/commit", false)]
    [InlineData("POST", "/v1/uploads", false)]
    [InlineData("PUT", "/v1/classifications/00000000-0000-0000-0000-000000000001/label", false)]
    [InlineData("POST", "/v1/uploads/commit", true)]
    [InlineData("POST", "/v1/uploads", true)]
    [InlineData("PUT", "/v1/classifications/00000000-0000-0000-0000-000000000001/label", true)]
    public async Task JsonBody_OverItsOwnLimit_413NamingTheLimit(string method, string path, bool chunked)
    {
        // 20 KB of JSON, under the whole-request limit (2 MB here) but over the JSON endpoints' (16 KB here).
        var factory = Start(new() { ["Uploads:MaxJsonBodyBytes"] = "16384" });
        factory.UseKestrel(0);
        factory.StartServer();
        using var http = factory.CreateClient();
        http.DefaultRequestHeaders.Add("X-Api-Key", AdminKey);
        var ids = string.Join(",", Enumerable.Range(0, 500).Select(_ => $"\"{Guid.NewGuid()}\""));
        using var request = new HttpRequestMessage(new HttpMethod(method), path)
        {
            Content = new StringContent($"{{\"ids\":[{ids}],\"label\":\"glass\"}}", Encoding.UTF8, "application/json"),
        };
        // Chunked: no Content-Length to refuse on, so the limit is only met while the body is read.
        if (chunked) request.Headers.TransferEncodingChunked = true;

        var response = await http.SendAsync(request);
        var body = await ClassifierClient.ReadJsonAsync(response);

        Assert.True(response.StatusCode == HttpStatusCode.RequestEntityTooLarge, body.ToJsonString());
        Assert.Equal("request_too_large", body["error"]!.GetValue<string>());
        Assert.Equal("the request body is over the limit of 16,384 bytes (Uploads__MaxJsonBodyBytes)", body["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task JsonBody_OnlyRequestLimitLowered_StartsAndHoldsJsonToIt()
    {
        // Lowering only Uploads:MaxRequestBytes below the JSON default (1 MiB) refused to start; it now caps the JSON routes too.
        var factory = Start(new() { ["Uploads:MaxRequestBytes"] = "16384" });
        factory.UseKestrel(0);
        factory.StartServer();
        using var http = factory.CreateClient();
        http.DefaultRequestHeaders.Add("X-Api-Key", AdminKey);
        var ids = string.Join(",", Enumerable.Range(0, 500).Select(_ => $"\"{Guid.NewGuid()}\""));

        var response = await http.PostAsync("/v1/uploads/commit", new StringContent($"{{\"ids\":[{ids}]}}", Encoding.UTF8, "application/json"));
        var body = await ClassifierClient.ReadJsonAsync(response);

        Assert.True(response.StatusCode == HttpStatusCode.RequestEntityTooLarge, body.ToJsonString());
        Assert.Equal("the request body is over the limit of 16,384 bytes (Uploads__MaxRequestBytes)", body["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task JsonBody_UnderItsLimit_Accepted()
    {
        // A commit of as many ids as a request may have (Uploads:MaxFilesPerRequest, 100 by default) fits the default limit.
        var factory = Start();
        using var http = factory.CreateClient();
        http.DefaultRequestHeaders.Add("X-Api-Key", AdminKey);
        var ids = Enumerable.Range(0, 100).Select(_ => Guid.NewGuid()).ToList();

        var response = await http.PostAsJsonAsync("/v1/uploads/commit", new { ids });

        // Unknown ids: refused one by one, not for the body's size.
        Assert.NotEqual(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task Ingest_BatchOverTheRequestLimit_AnsweredTooLargeBeforeItsBodyIsSent()
    {
        // An API slower to answer a batch's headers than HttpClient's default wait for them (1 s), after which it sends the
        // body anyway: wastectl's own client must wait longer.
        var factory = Start(keys: false, services: s => s.AddSingleton<IStartupFilter>(new SlowToAnswerHeaders(TimeSpan.FromSeconds(3))));
        factory.UseKestrel(0);
        factory.StartServer();
        using var kestrel = factory.CreateDefaultClient();
        var recorder = new BodyRecorder();
        var folder = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", Guid.NewGuid().ToString("N"));
        _directories.Add(folder);
        Directory.CreateDirectory(folder);
        var files = Enumerable.Range(0, 3).Select(i =>
        {
            var path = Path.Combine(folder, $"{i}.jpg");
            File.WriteAllBytes(path, new byte[900_000]);
            return new IngestFile(path, 900_000, File.GetLastWriteTimeUtc(path).Ticks);
        }).ToList();
        var options = new IngestOptions { Source = "line-9", StateFile = Path.Combine(folder, "state.jsonl"), MaxAttempts = 1 };
        using var http = IngestClient.CreateHttp(kestrel.BaseAddress!, options, observer: recorder);
        var client = new IngestClient(http, options);

        var result = await client.SendAsync(IngestClient.KeyFor("line-9", files), files, CancellationToken.None);

        // The ingester then sends the batch in halves. With Expect: 100-continue the API refuses on the headers: the
        // 2.7 MB are never sent, and the 413 cannot be lost to a connection reset while they are.
        Assert.True(result.Kind == IngestClient.Kind.TooLarge, $"{result.Kind}: {result.Reason}");
        Assert.Equal(1, recorder.Requests);
        Assert.Equal(0, recorder.BodiesSent);
    }

    /// <summary>Counts requests and the request bodies actually written to the connection.</summary>
    private sealed class BodyRecorder : DelegatingHandler
    {
        private int _requests, _bodiesSent;

        public int Requests => _requests;
        public int BodiesSent => _bodiesSent;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _requests);
            if (request.Content is { } content) request.Content = new Recorded(content, () => Interlocked.Increment(ref _bodiesSent));
            return base.SendAsync(request, cancellationToken);
        }

        private sealed class Recorded : HttpContent
        {
            private readonly HttpContent _inner;
            private readonly Action _sent;

            public Recorded(HttpContent inner, Action sent)
            {
                (_inner, _sent) = (inner, sent);
                foreach (var header in inner.Headers) Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
            {
                _sent();
                return _inner.CopyToAsync(stream);
            }

            protected override bool TryComputeLength(out long length)
            {
                length = _inner.Headers.ContentLength ?? -1;
                return length >= 0;
            }
        }
    }

    [Fact]
    public async Task EmbeddedDefault_HostRebound_421UnexpectedHost_LocalhostAnswers()
    {
        // A page under a DNS name rebound to 127.0.0.1 is same-origin with itself: its reads must not be answered.
        var http = Start(keys: false).CreateClient();
        using var rebound = new HttpRequestMessage(HttpMethod.Get, "/v1/classifications");
        rebound.Headers.Host = "rebind.evil.example:8080";
        rebound.Headers.Add("X-Forwarded-Host", "localhost");

        using var response = await http.SendAsync(rebound);

        Assert.Equal(HttpStatusCode.MisdirectedRequest, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonNode>();
        Assert.Equal("unexpected_host", body!["error"]!.GetValue<string>());
        Assert.Contains("'rebind.evil.example:8080'", body["message"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v1/classifications")).StatusCode);
    }

    [Theory]
    [InlineData("/metrics")]      // Prometheus scraping api:8080 under Compose
    [InlineData("/health/ready")] // a probe or an nginx container addressing api:8080
    [InlineData("/health/live")]
    public async Task EmbeddedDefault_ServiceName_ProbesAndMetricsAnswer_ApiRefused(string path)
    {
        var http = Start(keys: false).CreateClient();
        async Task<HttpStatusCode> GetAs(string host, string target)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, target);
            request.Headers.Host = host;
            using var response = await http.SendAsync(request);
            return response.StatusCode;
        }

        // Answered as under localhost (ready may be 503 in this test host), never 421.
        var status = await GetAs("api:8080", path);
        Assert.NotEqual(HttpStatusCode.MisdirectedRequest, status);
        Assert.Equal(await GetAs("localhost:8080", path), status);
        Assert.Equal(HttpStatusCode.MisdirectedRequest, await GetAs("api:8080", "/v1/classifications"));
    }

    [Fact]
    public async Task KeyedButClassificationOpen_HostRebound_421_KeyRequired_AnyHost()
    {
        // Keys configured, Auth:RequireKeyForClassification false (the default, as in Compose): reads and submissions are
        // answered without a key, so a rebound page could read them and submit (it got 200/200/202).
        var photo = File.ReadAllBytes(Dataset.Sample(1)[0].Path);
        HttpRequestMessage Rebound(HttpMethod method, string path, string? key = null)
        {
            var request = new HttpRequestMessage(method, path);
            request.Headers.Host = "rebind.evil.example:8080";
            if (method == HttpMethod.Post)
            {
                request.Content = ClassifierClient.Form([("a.jpg", photo)], null);
                request.Headers.Add("Origin", "http://rebind.evil.example:8080");
                request.Headers.Add("Sec-Fetch-Site", "same-origin");
            }
            if (key is not null) request.Headers.Add("X-Api-Key", key);
            return request;
        }
        foreach (var (method, path) in new[] { (HttpMethod.Get, "/v1/classifications"), (HttpMethod.Get, "/v1/samples"), (HttpMethod.Post, "/v1/classifications") })
        {
            using var request = Rebound(method, path);
            var (status, body, _) = await SendAsync(keyed.Http, request);
            Assert.True(status == HttpStatusCode.MisdirectedRequest, $"{method} {path}: {(int)status} {body.ToJsonString()}");
            Assert.Contains("Security__AllowedHosts__N=rebind.evil.example", body["message"]!.GetValue<string>());
        }
        // IP literals and localhost still answer.
        foreach (var host in new[] { "127.0.0.1:8080", "localhost:8080", "localhost.:8080", "192.168.1.20" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/classifications");
            request.Headers.Host = host;
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(keyed.Http, request)).Status);
        }

        // Every client call needs a key (as k8s/ sets): nothing for a page to read, any Host (an ingress's public name) passes.
        using var required = Rebound(HttpMethod.Get, "/v1/classifications", ClientKey);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(bound.Http, required)).Status);
        using var submitted = Rebound(HttpMethod.Post, "/v1/classifications", ClientKey);
        Assert.Equal(HttpStatusCode.Accepted, (await SendAsync(bound.Http, submitted)).Status);
    }

    [Theory]
    [InlineData("Uploads:MaxJsonBodyBytes", "0", "Uploads:MaxJsonBodyBytes is 0")]        // every JSON route answered 413
    [InlineData("Security:AllowedHosts:0", "classifier.local:8080", "Security:AllowedHosts:0")] // never matched
    [InlineData("Security:AllowedOrigins:0", "ui.example.com", "Security:AllowedOrigins:0")]    // never matched
    public void Start_SettingThatCouldNeverWork_ProcessRefusesToStart(string setting, string value, string message)
    {
        var factory = Start(keys: false, extra: new() { [setting] = value });
        var e = Assert.ThrowsAny<Exception>(() => factory.CreateClient());
        Assert.Contains(message, e.ToString());
    }

    [Fact]
    public async Task Submit_ObjectFolderCannotBeWritten_503WithRetryAfter()
    {
        var directory = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", Guid.NewGuid().ToString("N"));
        _directories.Add(directory);
        var http = Start(new() { ["ObjectStore:Root"] = directory }, keys: false).CreateClient();
        // A file where the images' folder goes: the store's writes fail as on a full or read-only volume (for root too).
        await File.WriteAllBytesAsync(Path.Combine(directory, "waste-images", "sha256"), [1]);
        var image = File.ReadAllBytes(Dataset.Sample(1)[0].Path);

        var (response, body) = await new ClassifierClient(http).SubmitAsync([("a.jpg", image)]);

        // It was an empty 500: the client could not tell an outage it should wait out from a refusal.
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, body.ToJsonString());
        Assert.Equal("service_unavailable", body["error"]!.GetValue<string>());
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.DoesNotContain(directory, body.ToJsonString());
    }

    [Fact]
    public async Task SlowUpload_BelowTheConfiguredMinimumRate_ConnectionEnded()
    {
        // Kestrel's own minimum (240 B/s after 5 s) would end a trickle of a few bytes a second too; a body sent at 2000 B/s,
        // far above it, is ended only by the configured 20000 B/s. Without the setting applied it stays open.
        const int bytesPerSecond = 2000;
        var factory = Start(new() { ["Uploads:MinBodyBytesPerSecond"] = "20000", ["Uploads:BodyGraceSeconds"] = "2" });
        factory.UseKestrel(0);
        factory.StartServer();
        var address = factory.CreateClient().BaseAddress!;
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, address.Port);
        var stream = tcp.GetStream();
        var boundary = "slowboundary";
        var head = $"POST /v1/classifications HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 1000000\r\n\r\n" +
                   $"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"slow.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n";
        var started = DateTime.UtcNow;
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        var sent = 0L;
        var answer = new StringBuilder();
        var ended = false;
        while (!ended && DateTime.UtcNow - started < TimeSpan.FromSeconds(30))
        {
            try
            {
                // What is due by now at the steady rate: a late turn of this loop on a loaded machine catches up, never above it.
                var due = (long)((DateTime.UtcNow - started).TotalSeconds * bytesPerSecond) - sent;
                if (due > 0)
                {
                    await stream.WriteAsync(new byte[due]);
                    sent += due;
                }
                await Task.Delay(100);
                if (tcp.Client.Poll(0, SelectMode.SelectRead)) ended = await ReadAnswerAsync(stream, answer);
            }
            catch (IOException)
            {
                ended = true;
            }
        }
        var elapsed = DateTime.UtcNow - started;
        Assert.True(ended, $"the server kept open for {elapsed.TotalSeconds:F0} s a connection that sent {bytesPerSecond} B/s, below the configured minimum");
        // Not ended for another reason before the configured grace; and sent fast enough that Kestrel's default would not have ended it.
        Assert.True(elapsed >= TimeSpan.FromSeconds(2), $"ended after {elapsed.TotalSeconds:F1} s, within the grace");
        Assert.True(sent / elapsed.TotalSeconds > 2 * 240, $"sent {sent} bytes in {elapsed.TotalSeconds:F1} s");
        // The answer, where one came before the connection closed, says why: a 408, which clients retry (it was a 400
        // malformed_request, and wastectl ingest stopped its run on it).
        if (answer.Length > 0)
        {
            Assert.StartsWith("HTTP/1.1 408", answer.ToString());
            Assert.Contains("\"request_timeout\"", answer.ToString());
            Assert.Contains("Uploads__MinBodyBytesPerSecond", answer.ToString());
        }
    }

    /// <summary>Reads what the server sent until it closes the connection; true once it has (or broke it off).</summary>
    private static async Task<bool> ReadAnswerAsync(NetworkStream stream, StringBuilder answer)
    {
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, timeout.Token)) > 0) answer.Append(Encoding.ASCII.GetString(buffer, 0, read));
            return true;
        }
        catch (OperationCanceledException)
        {
            // An answer on a connection left open ends the request all the same.
            return answer.Length > 0;
        }
    }

    /// <summary>Holds every classification request for a while before the API looks at it (nothing reads its body meanwhile).</summary>
    private sealed class SlowToAnswerHeaders(TimeSpan delay) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, nextMiddleware) =>
            {
                if (context.Request.Path.StartsWithSegments("/v1/classifications")) await Task.Delay(delay, context.RequestAborted);
                await nextMiddleware(context);
            });
            next(app);
        };
    }

    /// <summary>Makes every request look as if it came from another machine on the network.</summary>
    private sealed class RemoteAddress : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((context, nextMiddleware) =>
            {
                context.Connection.RemoteIpAddress = IPAddress.Parse("10.20.30.40");
                return nextMiddleware(context);
            });
            next(app);
        };
    }
}
