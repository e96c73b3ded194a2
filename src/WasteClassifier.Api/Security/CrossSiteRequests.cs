using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Security;

/// <summary>Configuration section <c>Security</c>: what the browser-facing checks allow.</summary>
public sealed class WebSecurityOptions
{
    public const string Section = "Security";

    /// <summary>
    /// Origins (<c>https://ui.example.com</c>) other than the service's own whose pages may send writes (a front end served
    /// elsewhere). Empty (default): only the service's own pages and clients that send no Origin (curl, wastectl).
    /// </summary>
    public List<string> AllowedOrigins { get; set; } = [];

    /// <summary>
    /// Under the embedded default (no API keys), host names other than localhost, IP literals and this machine's name that
    /// loopback clients may address the service by (<c>classifier.local</c>). Any other name is refused (DNS rebinding).
    /// </summary>
    public List<string> AllowedHosts { get; set; } = [];

    /// <summary>
    /// The section bound from <paramref name="configuration"/>, validated, refusing what the binder would silently drop: a
    /// plain value for a list (<c>Security__AllowedHosts=classifier.lan</c>) is ignored, leaving the name refused (421).
    /// </summary>
    public static WebSecurityOptions Bind(IConfiguration configuration)
    {
        foreach (var list in new[] { nameof(AllowedHosts), nameof(AllowedOrigins) })
            if (configuration.GetSection($"{Section}:{list}").Value is { } plain && !string.IsNullOrWhiteSpace(plain))
                throw new InvalidOperationException(
                    $"{Section}:{list} is a list: give each entry its own index, {Section}:{list}:0 " +
                    $"({Section}__{list}__0={plain}; in JSON \"{list}\": [\"{plain}\"])");
        return (configuration.GetSection(Section).Get<WebSecurityOptions>() ?? new WebSecurityOptions()).Validated();
    }

    /// <summary>
    /// Refuses at start an entry that could never match, which would otherwise fail silently: a host with a port or scheme
    /// (<c>classifier.local:8080</c>, <c>http://classifier.local</c>), an origin without a scheme or with a path.
    /// </summary>
    public WebSecurityOptions Validated()
    {
        foreach (var (entry, index) in AllowedHosts.Select((h, i) => (h.Trim(), i)))
            if (entry.Length > 0 && Uri.CheckHostName(UnexpectedHosts.WithoutTrailingDot(entry)) is UriHostNameType.Unknown or UriHostNameType.Basic)
                throw new InvalidOperationException(
                    $"{Section}:{nameof(AllowedHosts)}:{index} is '{entry}'; it must be a bare host name (classifier.local), no scheme, port or path");
        foreach (var (entry, index) in AllowedOrigins.Select((o, i) => (o.Trim(), i)))
            if (entry.Length > 0 && CrossSiteRequests.NormalizedOrigin(entry) is null)
                throw new InvalidOperationException(
                    $"{Section}:{nameof(AllowedOrigins)}:{index} is '{entry}'; it must be an origin, http(s)://host[:port] " +
                    "(https://ui.example.com), with no path, query or credentials");
        return this;
    }
}

/// <summary>
/// Refuses cross-site writes on every route, before any work: a request with an unsafe method (anything but GET, HEAD and
/// OPTIONS) whose <c>Origin</c> is not the service's own, or that the browser marks <c>Sec-Fetch-Site: cross-site</c>, is
/// a <c>403 cross_site_request</c>. A page the operator visits could otherwise post forms or no-cors fetches to the API
/// (on loopback, with the embedded default's admin rights). Clients that send neither header (curl, wastectl, the
/// worker) are not browsers and pass.
/// </summary>
public sealed class CrossSiteRequests(RequestDelegate next, WebSecurityOptions options)
{
    private readonly HashSet<string> _allowed = options.AllowedOrigins
        .Select(o => NormalizedOrigin(o.Trim())).OfType<string>().ToHashSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// <c>scheme://host[:port]</c>, the default port left out (as browsers send it), or null for what is no http(s) origin:
    /// no scheme, a path other than <c>/</c>, a query, a fragment or credentials.
    /// </summary>
    public static string? NormalizedOrigin(string origin) =>
        Uri.TryCreate(origin, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            && uri.AbsolutePath == "/" && uri.Query.Length == 0 && uri.Fragment.Length == 0 && uri.UserInfo.Length == 0
            && !origin.EndsWith('?') && !origin.EndsWith('#')
            ? uri.GetLeftPart(UriPartial.Authority)
            : null;

    public Task InvokeAsync(HttpContext context) =>
        Refusal(context.Request) is { } message
            ? ApiErrors.Result(StatusCodes.Status403Forbidden, "cross_site_request", message).ExecuteErrorAsync(context)
            : next(context);

    /// <summary>Why this request is refused as cross-site, or null.</summary>
    public string? Refusal(HttpRequest request)
    {
        if (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method) || HttpMethods.IsOptions(request.Method)) return null;
        // Browser-set (pages cannot forge Sec- headers): the service's own page, even behind a TLS proxy that sends no
        // X-Forwarded-Proto (Origin https://host while the service sees http://host:80).
        if (request.Headers["Sec-Fetch-Site"].ToString().Trim().Equals("same-origin", StringComparison.OrdinalIgnoreCase)) return null;
        var origin = request.Headers.Origin.ToString().Trim();
        if (origin.Length > 0 && NormalizedOrigin(origin) is { } normalized && _allowed.Contains(normalized)) return null;
        if (origin.Length > 0 && !IsOwnOrigin(request, origin))
            return $"{request.Method} from a page of another origin ('{origin}') is refused: only this service's own pages, " +
                   "the origins in Security:AllowedOrigins and clients that send no Origin may make changes";
        if (request.Headers["Sec-Fetch-Site"].ToString().Trim().Equals("cross-site", StringComparison.OrdinalIgnoreCase))
            return $"{request.Method} from a page of another site (Sec-Fetch-Site: cross-site) is refused: only this service's own " +
                   "pages, the origins in Security:AllowedOrigins and clients that send no Origin may make changes";
        return null;
    }

    /// <summary>
    /// The origin the client addressed: scheme, host and port (default ports included). Behind a proxy that terminates TLS
    /// or rewrites the Host, its X-Forwarded-Proto and X-Forwarded-Host say what the browser used; a page of another site
    /// cannot set those (they are not CORS-safelisted, and this API answers no preflight).
    /// </summary>
    public static bool IsOwnOrigin(HttpRequest request, string origin)
    {
        var scheme = First(request.Headers["X-Forwarded-Proto"]) ?? request.Scheme;
        var host = First(request.Headers["X-Forwarded-Host"]) ?? request.Host.Value;
        return Uri.TryCreate(origin, UriKind.Absolute, out var from) && from.AbsolutePath == "/"
            && Uri.TryCreate($"{scheme}://{host}", UriKind.Absolute, out var own)
            && string.Equals(from.Scheme, own.Scheme, StringComparison.OrdinalIgnoreCase)
            && string.Equals(from.IdnHost, own.IdnHost, StringComparison.OrdinalIgnoreCase)
            && from.Port == own.Port;
    }

    private static string? First(Microsoft.Extensions.Primitives.StringValues values) =>
        values.ToString().Split(',')[0].Trim() is { Length: > 0 } first ? first : null;
}
