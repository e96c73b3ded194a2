using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Api.Security;

namespace WasteClassifier.UnitTests.Api;

/// <summary>
/// What a web page the operator visits cannot do: reach the embedded default's loopback admin rights under a rebound DNS
/// name or through a local proxy, or send a write from another origin.
/// </summary>
public sealed class BrowserProtectionsTests
{
    private static readonly AuthOptions Embedded = new();

    [Theory]
    [InlineData("localhost")]
    [InlineData("localhost:8080")]
    [InlineData("LOCALHOST:8080")]
    [InlineData("127.0.0.1:8080")]
    [InlineData("[::1]:8080")]
    public void LoopbackAdmin_LoopbackHost_Accepted(string host) =>
        Assert.Null(AccessPolicies.LoopbackAdminRefusal(Context("POST", host), Embedded));

    [Theory]
    [InlineData("evil.example:8080")]
    [InlineData("localhost.evil.example")]
    [InlineData("192.168.1.20:8080")]
    public void LoopbackAdmin_HostNotLoopback_RefusedNamingTheHost(string host)
    {
        var reason = AccessPolicies.LoopbackAdminRefusal(Context("POST", host), Embedded);
        Assert.NotNull(reason);
        Assert.Contains($"Host is '{host}'", reason);
    }

    [Theory]
    [InlineData("X-Forwarded-For", "203.0.113.7")]
    [InlineData("Forwarded", "for=203.0.113.7")]
    [InlineData("X-Real-IP", "203.0.113.7")]
    public void LoopbackAdmin_ThroughAProxy_RefusedNamingTheHeader(string header, string value)
    {
        var context = Context("POST", "localhost:8080");
        context.Request.Headers[header] = value;
        var reason = AccessPolicies.LoopbackAdminRefusal(context, Embedded);
        Assert.NotNull(reason);
        Assert.Contains($"proxy (header {header})", reason);
    }

    [Fact]
    public void LoopbackAdmin_RemoteAddressOrTurnedOff_RefusedSayingWhy()
    {
        var remote = Context("POST", "localhost");
        remote.Connection.RemoteIpAddress = IPAddress.Parse("10.20.30.40");
        Assert.Contains("came from 10.20.30.40", AccessPolicies.LoopbackAdminRefusal(remote, Embedded));
        Assert.Contains("AllowLoopbackAdminWithoutKeys is false",
            AccessPolicies.LoopbackAdminRefusal(Context("POST", "localhost"), new AuthOptions { AllowLoopbackAdminWithoutKeys = false }));
    }

    [Theory]
    [InlineData("POST", "http://evil.example")]
    [InlineData("PUT", "http://localhost:9999")]
    [InlineData("DELETE", "https://localhost:8080")]
    [InlineData("POST", "null")]
    public async Task CrossSite_WriteFromAnotherOrigin_403JsonNamingTheOrigin(string method, string origin)
    {
        var context = Context(method, "localhost:8080");
        context.Request.Headers.Origin = origin;

        var (status, body, ran) = await InvokeAsync(context);

        Assert.False(ran);
        Assert.Equal(StatusCodes.Status403Forbidden, status);
        Assert.Equal("cross_site_request", body!["error"]!.GetValue<string>());
        Assert.Contains($"'{origin}'", body["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task CrossSite_SecFetchSiteCrossSite_403()
    {
        var context = Context("POST", "localhost:8080");
        context.Request.Headers["Sec-Fetch-Site"] = "cross-site";

        var (status, body, ran) = await InvokeAsync(context);

        Assert.False(ran);
        Assert.Equal(StatusCodes.Status403Forbidden, status);
        Assert.Contains("Sec-Fetch-Site", body!["message"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("POST", "http://localhost:8080", null)]
    [InlineData("POST", "http://LOCALHOST:8080", "same-origin")]
    [InlineData("POST", null, null)]                                // curl, wastectl
    [InlineData("GET", "http://evil.example", "cross-site")]        // reads are not refused (CORS keeps their answers)
    [InlineData("HEAD", "http://evil.example", null)]
    [InlineData("OPTIONS", "http://evil.example", null)]
    public async Task CrossSite_SameOriginNoOriginOrSafeMethod_Passes(string method, string? origin, string? fetchSite)
    {
        var context = Context(method, "localhost:8080");
        if (origin is not null) context.Request.Headers.Origin = origin;
        if (fetchSite is not null) context.Request.Headers["Sec-Fetch-Site"] = fetchSite;

        Assert.True((await InvokeAsync(context)).Ran);
    }

    [Fact]
    public async Task CrossSite_BehindATlsProxy_TheForwardedSchemeAndHostAreTheOwnOrigin()
    {
        var context = Context("POST", "10.0.0.5:8080");
        context.Request.Headers.Origin = "https://classifier.example.com";
        context.Request.Headers["X-Forwarded-Proto"] = "https";
        context.Request.Headers["X-Forwarded-Host"] = "classifier.example.com";

        Assert.True((await InvokeAsync(context)).Ran);
    }

    [Fact]
    public async Task CrossSite_AllowedOrigin_Passes()
    {
        var options = new WebSecurityOptions { AllowedOrigins = ["https://ui.example.com/"] };
        var context = Context("POST", "localhost:8080");
        context.Request.Headers.Origin = "https://ui.example.com";
        context.Request.Headers["Sec-Fetch-Site"] = "cross-site";
        Assert.True((await InvokeAsync(context, options)).Ran);

        var other = Context("POST", "localhost:8080");
        other.Request.Headers.Origin = "https://ui.example.org";
        Assert.False((await InvokeAsync(other, options)).Ran);
    }

    [Fact]
    public async Task CrossSite_AllowedOriginWithItsDefaultPort_MatchesTheBrowsersOrigin()
    {
        // Browsers leave the default port out of Origin: https://ui.example.com:443 listed never matched.
        var options = new WebSecurityOptions { AllowedOrigins = ["https://UI.example.com:443"] };
        var context = Context("POST", "localhost:8080");
        context.Request.Headers.Origin = "https://ui.example.com";
        Assert.True((await InvokeAsync(context, options)).Ran);
    }

    [Fact]
    public async Task CrossSite_SameOriginFetchBehindATlsProxyWithoutForwardedProto_Passes()
    {
        // The proxy terminates TLS and sends no X-Forwarded-Proto: the page's Origin is https, the service sees http.
        var context = Context("POST", "classifier.example.com");
        context.Request.Headers.Origin = "https://classifier.example.com";
        context.Request.Headers["Sec-Fetch-Site"] = "same-origin";

        Assert.True((await InvokeAsync(context)).Ran);
    }

    [Theory]
    [InlineData("GET", "rebind.evil.example:8080", null)]
    [InlineData("POST", "rebind.evil.example:8080", null)]
    [InlineData("GET", "localhost.evil.example", "X-Forwarded-Host")]  // a rebound page can send forwarding headers
    public async Task UnexpectedHost_LoopbackUnderANameNotLocal_421NamingTheHostAndTheSetting(string method, string host, string? header)
    {
        var context = Context(method, host);
        context.Request.Path = "/v1/classifications";
        if (header is not null) context.Request.Headers[header] = "localhost";

        var (status, body, ran) = await InvokeHostsAsync(context);

        Assert.False(ran);
        Assert.Equal(StatusCodes.Status421MisdirectedRequest, status);
        Assert.Equal("unexpected_host", body!["error"]!.GetValue<string>());
        Assert.Contains($"'{host}'", body["message"]!.GetValue<string>());
        Assert.Contains("Security:AllowedHosts", body["message"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("localhost:8080")]
    [InlineData("127.0.0.1:8080")]
    [InlineData("[::1]:8080")]
    [InlineData("192.168.1.20:8080")]  // an IP literal: nothing to rebind
    [InlineData("classifier.lan:8080")] // Security:AllowedHosts
    public async Task UnexpectedHost_ExpectedNames_Pass(string host) =>
        Assert.True((await InvokeHostsAsync(Context("GET", host))).Ran);

    [Fact]
    public async Task UnexpectedHost_MachineNameAndNoConnection_Pass()
    {
        Assert.True((await InvokeHostsAsync(Context("GET", Environment.MachineName + ":8080"))).Ran);
        // The mDNS name LAN clients use was refused (421).
        Assert.True((await InvokeHostsAsync(Context("GET", Environment.MachineName + ".local:8080"))).Ran);
        Assert.True((await InvokeHostsAsync(Context("GET", Environment.MachineName + ".local."))).Ran);
        Assert.True((await InvokeHostsAsync(Context("GET", System.Net.Dns.GetHostName()))).Ran);

        // No connection (the in-process test server): still checked, "localhost" passes.
        var inProcess = Context("GET", "localhost");
        inProcess.Connection.RemoteIpAddress = null;
        Assert.True((await InvokeHostsAsync(inProcess)).Ran);
        var inProcessRebound = Context("GET", "rebind.evil.example");
        inProcessRebound.Connection.RemoteIpAddress = null;
        Assert.False((await InvokeHostsAsync(inProcessRebound)).Ran);
    }

    [Theory]
    [InlineData("localhost.:8080")]
    [InlineData("LOCALHOST:8080")]
    [InlineData("127.0.0.1.:8080")]
    [InlineData("classifier.lan.:8080")]
    public async Task UnexpectedHost_OneTrailingDot_Passes(string host) =>
        Assert.True((await InvokeHostsAsync(Context("GET", host))).Ran);

    [Fact]
    public async Task UnexpectedHost_TwoTrailingDots_421() =>
        Assert.False((await InvokeHostsAsync(Context("GET", "localhost..:8080"))).Ran);

    // Docker's port proxy and a listener on 0.0.0.0 see browsers' connections from a non-loopback address: a rebound name
    // reaches the service there just the same.
    [Theory]
    [InlineData("172.18.0.1")]
    [InlineData("10.20.30.40")]
    public async Task UnexpectedHost_NonLoopbackConnection_ReboundHost_421_IpAndLocalhostPass(string remote)
    {
        var rebound = Context("GET", "rebind.evil.example:8080");
        rebound.Connection.RemoteIpAddress = IPAddress.Parse(remote);
        var (status, body, ran) = await InvokeHostsAsync(rebound);
        Assert.False(ran);
        Assert.Equal(StatusCodes.Status421MisdirectedRequest, status);
        Assert.Contains("Security__AllowedHosts__N=rebind.evil.example", body!["message"]!.GetValue<string>());
        foreach (var host in new[] { "192.168.1.20:8080", "localhost:8080", "classifier.lan" })
        {
            var expected = Context("GET", host);
            expected.Connection.RemoteIpAddress = IPAddress.Parse(remote);
            Assert.True((await InvokeHostsAsync(expected)).Ran);
        }
    }

    // Keys configured but classification open (Auth:RequireKeyForClassification false, the default): reads and submissions
    // are answered without a key, so the Host is checked.
    [Fact]
    public async Task UnexpectedHost_KeyedButClassificationOpen_421()
    {
        var (status, _, ran) = await InvokeHostsAsync(Context("GET", "rebind.evil.example:8080"), Keyed(requireKey: false));
        Assert.False(ran);
        Assert.Equal(StatusCodes.Status421MisdirectedRequest, status);
    }

    // Every call but the always-open ones needs a key: any Host passes (an ingress under a public name).
    [Fact]
    public async Task UnexpectedHost_KeyRequiredForEverything_AnyHostPasses()
    {
        var remote = Context("GET", "classifier.example.com");
        remote.Connection.RemoteIpAddress = IPAddress.Parse("10.20.30.40");
        Assert.True((await InvokeHostsAsync(remote, Keyed(requireKey: true))).Ran);
        Assert.True((await InvokeHostsAsync(Context("GET", "rebind.evil.example"), Keyed(requireKey: true))).Ran);
        // No keys: loopback admin is open, so the Host is checked even with classification closed.
        Assert.False((await InvokeHostsAsync(Context("GET", "rebind.evil.example"), new AuthOptions { RequireKeyForClassification = true })).Ran);
    }

    private static AuthOptions Keyed(bool requireKey) => new()
    {
        RequireKeyForClassification = requireKey,
        Keys = [new AuthOptions.ApiKeyEntry { Name = "a", Hash = WasteClassifier.Infrastructure.Security.ApiKeys.Hash("k"), Role = Roles.Admin }],
    };

    private static DefaultHttpContext Context(string method, string host)
    {
        var context = new DefaultHttpContext { RequestServices = new ServiceCollection().AddLogging().BuildServiceProvider() };
        context.Request.Method = method;
        context.Request.Scheme = "http";
        context.Request.Host = new HostString(host);
        context.Request.Path = "/v1/training-jobs";
        context.Connection.RemoteIpAddress = IPAddress.Loopback;
        context.Response.Body = new MemoryStream();
        return context;
    }

    private static async Task<(int Status, JsonNode? Body, bool Ran)> InvokeAsync(DefaultHttpContext context, WebSecurityOptions? options = null)
    {
        var ran = false;
        var middleware = new CrossSiteRequests(_ => { ran = true; return Task.CompletedTask; }, options ?? new WebSecurityOptions());
        await middleware.InvokeAsync(context);
        var bytes = ((MemoryStream)context.Response.Body).ToArray();
        return (context.Response.StatusCode, bytes.Length > 0 ? JsonNode.Parse(bytes) : null, ran);
    }

    private static async Task<(int Status, JsonNode? Body, bool Ran)> InvokeHostsAsync(DefaultHttpContext context, AuthOptions? auth = null)
    {
        var ran = false;
        var options = new WebSecurityOptions { AllowedHosts = ["classifier.lan"] };
        auth ??= new AuthOptions();
        var middleware = new UnexpectedHosts(_ => { ran = true; return Task.CompletedTask; }, options, auth, new ApiKeyStore(auth));
        await middleware.InvokeAsync(context);
        var bytes = ((MemoryStream)context.Response.Body).ToArray();
        return (context.Response.StatusCode, bytes.Length > 0 ? JsonNode.Parse(bytes) : null, ran);
    }
}
