namespace WasteClassifier.Api.Apis;

/// <summary>
/// <c>Api:PublicBaseUrl</c> (optional): the API's address as clients reach it, e.g. <c>https://waste.example.org/classifier</c>
/// behind a TLS-terminating proxy. <c>POST /v1/uploads</c> builds its <c>commit_url</c> and the embedded folder store's upload URLs on it. Unset, the
/// upload URLs are built on the request's scheme, Host and path base, which behind such a proxy say http: the API does not trust
/// X-Forwarded-* (anyone could send them); <c>commit_url</c> then stays relative, which the client resolves against its own origin.
/// </summary>
public sealed record PublicBaseUrlOptions(string? BaseUrl)
{
    public const string Key = "Api:PublicBaseUrl";

    public static PublicBaseUrlOptions From(IConfiguration configuration)
    {
        var value = configuration[Key];
        if (string.IsNullOrWhiteSpace(value)) return new PublicBaseUrlOptions((string?)null);
        // A relative value parses as file:// on Linux, which the scheme check refuses too.
        if (!Uri.TryCreate(value.Trim(), UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https") || url.Host.Length == 0)
            throw new InvalidOperationException($"{Key} must be an absolute http:// or https:// URL, optionally with a path, such as https://waste.example.org/classifier; got '{value}'");
        // It is written into answers to clients.
        if (url.UserInfo.Length > 0)
            throw new InvalidOperationException($"{Key} must not hold a user name or password; got a URL with one for {url.Host}");
        // Upload paths are appended to it: a query or fragment would end up in the middle of each URL.
        if (value.Contains('?') || value.Contains('#'))
            throw new InvalidOperationException($"{Key} must not have a query or a fragment (? or #); got '{value}'");
        return new PublicBaseUrlOptions(url.AbsoluteUri.TrimEnd('/'));
    }

    /// <summary>The API's root as clients reach it, without a trailing slash: the setting, or the request's own.</summary>
    public string Root(HttpRequest request) => BaseUrl ?? $"{request.Scheme}://{request.Host}{request.PathBase}";

    /// <summary>
    /// A link to one of the API's own routes: absolute on the setting, else relative (with the request's path base), so a
    /// client behind a TLS-terminating proxy keeps its https origin rather than being sent to the http address the API sees.
    /// </summary>
    public string Link(HttpRequest request, string path) => BaseUrl is null ? $"{request.PathBase}{path}" : BaseUrl + path;
}
