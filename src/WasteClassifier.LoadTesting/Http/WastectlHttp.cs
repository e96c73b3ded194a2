using System.Net;

namespace WasteClassifier.LoadTesting.Http;

/// <summary>
/// Every HttpClient of wastectl. It follows no redirect: HttpClient drops Authorization when it follows one, but not
/// X-Api-Key, so a target answering 3xx to another host was sent the key. A 3xx is the answer instead, and
/// <see cref="Redirected"/> says what to do about it.
/// </summary>
public static class WastectlHttp
{
    public const string ApiKeyHeader = "X-Api-Key";

    /// <summary>
    /// How long a request sent with <c>Expect: 100-continue</c> waits, by default, for the server's answer to its headers
    /// before it sends its body anyway. HttpClient's own 1 s was shorter than a busy API can take to answer them: the body
    /// then went out, and a 413 answered meanwhile could be lost to the reset of a connection refusing a body in flight.
    /// </summary>
    public static readonly TimeSpan ContinueWait = TimeSpan.FromSeconds(30);

    /// <param name="apiKey">Sent as <see cref="ApiKeyHeader"/> on every request, when given.</param>
    /// <param name="continueWait">The wait of a request sent with <c>Expect: 100-continue</c>; <see cref="ContinueWait"/> when not given.</param>
    /// <param name="observer">A handler put in front of wastectl's own, which it passes requests on to (tests see what is sent).</param>
    public static HttpClient CreateClient(Uri baseAddress, TimeSpan timeout, string? apiKey = null, TimeSpan? continueWait = null,
        DelegatingHandler? observer = null)
    {
        HttpMessageHandler handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            MaxConnectionsPerServer = int.MaxValue,
            Expect100ContinueTimeout = continueWait ?? ContinueWait,
        };
        if (observer is not null)
        {
            observer.InnerHandler = handler;
            handler = observer;
        }
        var http = new HttpClient(handler)
        {
            BaseAddress = baseAddress,
            Timeout = timeout,
        };
        if (!string.IsNullOrEmpty(apiKey)) http.DefaultRequestHeaders.Add(ApiKeyHeader, apiKey);
        return http;
    }

    /// <summary>Null unless <paramref name="response"/> is a redirect; then why it failed, naming where it pointed.</summary>
    public static string? Redirected(HttpResponseMessage response)
    {
        var status = (int)response.StatusCode;
        if (status is < 300 or > 399 || response.StatusCode == HttpStatusCode.NotModified) return null;
        var request = response.RequestMessage;
        var location = response.Headers.Location is { } l ? (l.IsAbsoluteUri || request?.RequestUri is null ? l : new Uri(request.RequestUri, l)).ToString() : "nowhere (no Location)";
        return $"{request?.Method} {request?.RequestUri} answered {status} redirecting to {location}: wastectl follows no redirect " +
               "(its API key would go along); give the final URL as --target";
    }
}
