using System.Net;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.RateLimiting;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Security;

/// <summary>
/// Who may call what. <see cref="Client"/>: submit and read classifications (open unless
/// <c>Auth:RequireKeyForClassification</c>). <see cref="Admin"/>: everything that changes models or training data.
/// </summary>
public static class AccessPolicies
{
    public const string Client = "classifier.client";
    public const string Admin = "classifier.admin";
    public const string RateLimit = "classifier.per-client";

    /// <summary>Writes that clients (not only admins) may make; every other non-GET route under the API group needs an admin key.</summary>
    private static readonly HashSet<string> ClientWrites = new(StringComparer.OrdinalIgnoreCase)
    {
        "POST /v1/classifications/",
        "POST /v1/classifications",
        "POST /predict",
    };

    /// <summary>Reads open to anyone whatever the configuration: the service description, class names and the original health check.</summary>
    private static readonly HashSet<string> AlwaysOpen = new(StringComparer.OrdinalIgnoreCase) { "GET /", "GET /health", "GET /classes" };

    /// <summary>
    /// Applies the rules to every endpoint mapped in <paramref name="group"/> (at the end, so the endpoint's own metadata is
    /// known): reads and client writes get <see cref="Client"/>, any other write <see cref="Admin"/> (secure by default: a new
    /// write endpoint is admin-only until listed). An endpoint with its own [Authorize]/[AllowAnonymous] keeps it.
    /// Every endpoint gets the per-client rate limit.
    /// </summary>
    public static TBuilder WithAccessRules<TBuilder>(this TBuilder group) where TBuilder : IEndpointConventionBuilder
    {
        group.Finally(endpoint =>
        {
            if (!endpoint.Metadata.OfType<DisableRateLimitingAttribute>().Any()) endpoint.Metadata.Add(new EnableRateLimitingAttribute(RateLimit));
            if (endpoint.Metadata.Any(m => m is IAuthorizeData or IAllowAnonymous)) return;
            var policy = PolicyFor(endpoint);
            if (policy is not null) endpoint.Metadata.Add(new AuthorizeAttribute(policy));
        });
        return group;
    }

    public static string? PolicyFor(EndpointBuilder endpoint)
    {
        var methods = endpoint.Metadata.OfType<IHttpMethodMetadata>().LastOrDefault()?.HttpMethods ?? [];
        var pattern = "/" + ((endpoint as RouteEndpointBuilder)?.RoutePattern.RawText ?? "").TrimStart('/');
        if (methods.Count > 0 && methods.All(m => AlwaysOpen.Contains($"{m} {pattern}"))) return null;
        if (methods.Count > 0 && methods.All(m => HttpMethods.IsGet(m) || HttpMethods.IsHead(m) || ClientWrites.Contains($"{m} {pattern}"))) return Client;
        return Admin;
    }

    public static void AddPolicies(AuthorizationOptions options)
    {
        options.AddPolicy(Client, p => p.AddAuthenticationSchemes(ApiKeyAuthenticationHandler.SchemeName).AddRequirements(new ClientRequirement()));
        options.AddPolicy(Admin, p => p.AddAuthenticationSchemes(ApiKeyAuthenticationHandler.SchemeName).AddRequirements(new AdminRequirement()));
    }

    /// <summary>No network connection (in-process test server, a unix socket) or a loopback address.</summary>
    public static bool IsLocal(HttpContext context) =>
        context.Connection.RemoteIpAddress is not { } address || IPAddress.IsLoopback(address);

    /// <summary>Headers a reverse proxy adds: through one on this machine, every client's connection comes from loopback.</summary>
    public static readonly string[] ForwardingHeaders = ["Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP"];

    /// <summary>
    /// Why an admin call without a key is refused under the embedded default (no keys configured), or null when it is
    /// accepted: from loopback, addressed to a loopback name, and not through a proxy. The Host check stops a web page the
    /// operator visits from reaching the API under a DNS name rebound to 127.0.0.1; a forwarding header means a proxy on
    /// this machine relayed a client that may be anywhere.
    /// </summary>
    public static string? LoopbackAdminRefusal(HttpContext context, AuthOptions options)
    {
        const string prefix = "this endpoint needs an admin API key; none is configured (Auth:Keys), so admin calls are only accepted from this machine (loopback)";
        if (!options.AllowLoopbackAdminWithoutKeys) return "this endpoint needs an admin API key; none is configured (Auth:Keys) and Auth:AllowLoopbackAdminWithoutKeys is false";
        if (!IsLocal(context)) return $"{prefix}; this request came from {context.Connection.RemoteIpAddress}";
        if (!IsLoopbackHost(context.Request.Host))
            return $"{prefix}, addressed as localhost, 127.0.0.1 or [::1]; this request's Host is '{context.Request.Host}'";
        if (ForwardingHeaders.FirstOrDefault(h => context.Request.Headers.ContainsKey(h)) is { } header)
            return $"{prefix}; this request came through a proxy (header {header}), so its client may be on another machine";
        return null;
    }

    /// <summary><c>localhost</c> or a loopback address (<c>127.0.0.1</c>, <c>[::1]</c>), any port, one trailing dot allowed.</summary>
    public static bool IsLoopbackHost(HostString host)
    {
        var name = UnexpectedHosts.WithoutTrailingDot(host.Host.TrimStart('[').TrimEnd(']'));
        return name.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(name, out var address) && IPAddress.IsLoopback(address));
    }

    public sealed class ClientRequirement : IAuthorizationRequirement;

    public sealed class AdminRequirement : IAuthorizationRequirement;

    public sealed class Handler(AuthOptions options, ApiKeyStore keys) : IAuthorizationHandler
    {
        public Task HandleAsync(AuthorizationHandlerContext context)
        {
            var http = context.Resource as HttpContext;
            var user = context.User;
            var authenticated = user.Identity?.IsAuthenticated == true;
            foreach (var requirement in context.PendingRequirements.ToList())
            {
                switch (requirement)
                {
                    case ClientRequirement when !options.RequireKeyForClassification || authenticated:
                        context.Succeed(requirement);
                        break;
                    case ClientRequirement:
                        context.Fail(new AuthorizationFailureReason(this, $"this endpoint needs an API key (header {ApiKeyAuthenticationHandler.HeaderName} or Authorization: Bearer)"));
                        break;
                    case AdminRequirement when user.IsInRole(Roles.Admin):
                        context.Succeed(requirement);
                        break;
                    case AdminRequirement when !keys.Any && http is not null && LoopbackAdminRefusal(http, options) is null:
                        context.Succeed(requirement);
                        break;
                    case AdminRequirement:
                        context.Fail(new AuthorizationFailureReason(this, authenticated
                            ? $"this endpoint needs an admin key; the key '{user.Identity!.Name}' has the role client"
                            : AdminKeyNeeded(http, options, keys)));
                        break;
                }
            }
            return Task.CompletedTask;
        }
    }

    /// <summary>Why a caller without a key may not make an admin call.</summary>
    private static string AdminKeyNeeded(HttpContext? http, AuthOptions options, ApiKeyStore keys) =>
        keys.Any || http is null
            ? $"this endpoint needs an admin API key (header {ApiKeyAuthenticationHandler.HeaderName} or Authorization: Bearer)"
            : LoopbackAdminRefusal(http, options) ?? "this endpoint needs an admin API key";

    /// <summary>401 and 403 as the API's JSON error body, with the reason the policy gave.</summary>
    public sealed class JsonResultHandler(AuthOptions options, ApiKeyStore keys) : IAuthorizationMiddlewareResultHandler
    {
        private readonly AuthorizationMiddlewareResultHandler _default = new();

        public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult result)
        {
            if (result.Succeeded)
            {
                await _default.HandleAsync(next, context, policy, result);
                return;
            }
            // A challenge (no valid key) carries no failure reasons: the policy's requirements say what was needed.
            var reason = result.AuthorizationFailure?.FailureReasons.FirstOrDefault()?.Message
                ?? (policy.Requirements.OfType<AdminRequirement>().Any()
                    ? AdminKeyNeeded(context, options, keys)
                    : $"this endpoint needs an API key (header {ApiKeyAuthenticationHandler.HeaderName} or Authorization: Bearer)");
            var presented = ApiKeyAuthenticationHandler.ReadKey(context.Request) is not null;
            var authenticated = context.User.Identity?.IsAuthenticated == true;
            if (result.Forbidden && authenticated)
            {
                await ApiErrors.Result(StatusCodes.Status403Forbidden, "forbidden", reason).ExecuteErrorAsync(context);
                return;
            }
            context.Response.Headers.WWWAuthenticate = $"ApiKey header=\"{ApiKeyAuthenticationHandler.HeaderName}\", Bearer";
            await ApiErrors.Result(StatusCodes.Status401Unauthorized, presented ? "invalid_api_key" : "unauthorized",
                presented ? "the API key is not valid" : reason).ExecuteErrorAsync(context);
        }
    }
}
