using System.Net;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Security;

/// <summary>
/// DNS rebinding under the embedded default (no API keys configured): a page at <c>http://rebind.evil:8080</c> whose name
/// is rebound to 127.0.0.1 is same-origin with itself, so it could read every classification and submit new ones. A
/// request from loopback (or with no network connection: the in-process test server) must therefore address the service
/// as localhost, a loopback or other IP literal, this machine's name, or a name in <c>Security:AllowedHosts</c>;
/// otherwise <c>421 unexpected_host</c>. Forwarding headers exempt nothing: a rebound page can send them. With API keys
/// configured nothing is open to a page, and any Host passes.
/// </summary>
public sealed class UnexpectedHosts(RequestDelegate next, WebSecurityOptions options, ApiKeyStore keys)
{
    private readonly HashSet<string> _allowed = new[] { Environment.MachineName, MachineHostName() }
        .Concat(options.AllowedHosts)
        .Select(h => h.Trim().TrimEnd('.')).Where(h => h.Length > 0).ToHashSet(StringComparer.OrdinalIgnoreCase);

    public Task InvokeAsync(HttpContext context) =>
        !keys.Any && AccessPolicies.IsLocal(context) && !IsExpected(context.Request.Host)
            ? ApiErrors.Result(StatusCodes.Status421MisdirectedRequest, "unexpected_host",
                $"the Host '{context.Request.Host}' is refused: with no API keys configured (Auth:Keys), requests from this machine " +
                "must address it as localhost, 127.0.0.1, [::1], an IP address or this machine's name, or a name listed in " +
                "Security:AllowedHosts").ExecuteErrorAsync(context)
            : next(context);

    /// <summary>No Host (HTTP/1.0: not a browser), a loopback name, an IP literal, this machine's name, or an allowed name.</summary>
    public bool IsExpected(HostString host)
    {
        if (!host.HasValue || AccessPolicies.IsLoopbackHost(host)) return true;
        var name = host.Host.TrimStart('[').TrimEnd(']');
        return IPAddress.TryParse(name, out _) || _allowed.Contains(name.TrimEnd('.'));
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
