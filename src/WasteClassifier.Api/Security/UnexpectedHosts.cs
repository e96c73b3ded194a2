using System.Net;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Security;

/// <summary>
/// DNS rebinding: a page at <c>http://rebind.evil:8080</c> whose name is rebound to the service's address (127.0.0.1, or
/// the address Docker's port proxy or a LAN listener answers on) is same-origin with itself, so it can read and submit
/// whatever is answered without a key. While anything is (see <see cref="AnsweredWithoutKey"/>), every request, from any
/// address, must address the service as localhost, an IP literal, this machine's name, or a name in
/// <c>Security:AllowedHosts</c>; otherwise <c>421 unexpected_host</c>. Forwarding headers exempt nothing: a rebound page
/// can send them. Once every call but the always-open ones (<c>/</c>, <c>/health</c>, <c>/classes</c>) needs a key, a page
/// has nothing to gain and any Host passes (an ingress under a public name).
/// </summary>
public sealed class UnexpectedHosts(RequestDelegate next, WebSecurityOptions options, AuthOptions auth, ApiKeyStore keys)
{
    private readonly HashSet<string> _allowed = MachineNames()
        .Concat(options.AllowedHosts)
        .Select(h => WithoutTrailingDot(h.Trim())).Where(h => h.Length > 0).ToHashSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Whether some non-trivial route answers a caller without a key: client routes (every GET, submissions) unless
    /// <c>Auth:RequireKeyForClassification</c>; admin routes from loopback while no key is configured (AccessPolicies).
    /// </summary>
    public bool AnsweredWithoutKey => !auth.RequireKeyForClassification || (!keys.Any && auth.AllowLoopbackAdminWithoutKeys);

    public Task InvokeAsync(HttpContext context) =>
        AnsweredWithoutKey && !IsProbe(context.Request.Path) && !IsExpected(context.Request.Host)
            ? ApiErrors.Result(StatusCodes.Status421MisdirectedRequest, "unexpected_host",
                $"the Host '{context.Request.Host}' is refused (DNS rebinding): while calls without an API key are answered, clients " +
                "must address the service as localhost, an IP address, this machine's name or a name in Security:AllowedHosts. " +
                $"To serve it under this name, add Security__AllowedHosts__N={WithoutTrailingDot(context.Request.Host.Host)} " +
                "(N: the next free index), or require keys (Auth:Keys and Auth:RequireKeyForClassification=true)").ExecuteErrorAsync(context)
            : next(context);

    /// <summary>
    /// <c>/health/*</c> and <c>/metrics</c> pass under any Host: a rebound page gains nothing there that matters (states and
    /// counts only), and probes and scrapers address the service by internal names (<c>api:8080</c>) or pod IPs.
    /// </summary>
    public static bool IsProbe(PathString path) =>
        path.StartsWithSegments("/metrics") || (path.StartsWithSegments("/health", out var rest) && rest.HasValue && rest != "/");

    /// <summary>No Host (HTTP/1.0: not a browser), a loopback name, an IP literal, this machine's name, or an allowed name.</summary>
    public bool IsExpected(HostString host)
    {
        if (!host.HasValue || AccessPolicies.IsLoopbackHost(host)) return true;
        var name = WithoutTrailingDot(host.Host.TrimStart('[').TrimEnd(']'));
        return IPAddress.TryParse(name, out _) || _allowed.Contains(name);
    }

    /// <summary>A fully qualified name's one trailing dot (<c>localhost.</c>) names the same host.</summary>
    public static string WithoutTrailingDot(string name) => name.EndsWith('.') ? name[..^1] : name;

    /// <summary>
    /// This machine's names, computed once at start without a network lookup: the host name, its FQDN where a domain is
    /// configured, and each one's mDNS form (<c>name.local</c>), as LAN clients reach it.
    /// </summary>
    public static IEnumerable<string> MachineNames()
    {
        var names = new List<string> { Environment.MachineName, MachineHostName() };
        var domain = MachineDomainName();
        if (domain.Length > 0) names.AddRange(names.Where(n => n.Length > 0 && !n.Contains('.')).Select(n => $"{n}.{domain}").ToList());
        return names.Where(n => n.Length > 0)
            .SelectMany(n => n.EndsWith(".local", StringComparison.OrdinalIgnoreCase) ? [n] : new[] { n, $"{n}.local" });
    }

    private static string MachineDomainName()
    {
        try
        {
            var domain = System.Net.NetworkInformation.IPGlobalProperties.GetIPGlobalProperties().DomainName.Trim().Trim('.');
            return domain == "(none)" ? "" : domain;
        }
        catch (System.Net.NetworkInformation.NetworkInformationException)
        {
            return "";
        }
    }

    private static string MachineHostName()
    {
        try
        {
            return Dns.GetHostName();
        }
        catch (System.Net.Sockets.SocketException)
        {
            return "";
        }
    }
}
