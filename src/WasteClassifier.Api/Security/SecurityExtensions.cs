using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace WasteClassifier.Api.Security;

/// <summary>API keys, access policies, rate limits and slow-client limits: one call to register, one to use.</summary>
public static class SecurityExtensions
{
    public static void AddClassifierSecurity(this WebApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        var services = builder.Services;
        var auth = AuthOptions.Bind(configuration);
        var keys = new ApiKeyStore(auth); // validates at start: a malformed key entry stops the process
        services.AddSingleton(auth);
        services.AddSingleton(keys);
        services.AddSingleton(WebSecurityOptions.Bind(configuration));
        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        services.AddAuthorization(AccessPolicies.AddPolicies);
        services.AddSingleton<IAuthorizationHandler, AccessPolicies.Handler>();
        services.AddSingleton<Microsoft.AspNetCore.Authorization.IAuthorizationMiddlewareResultHandler, AccessPolicies.JsonResultHandler>();

        var rate = configuration.GetSection(RateLimitOptions.Section).Get<RateLimitOptions>() ?? new RateLimitOptions();
        services.AddRateLimiter(limiter => RateLimitOptions.Configure(limiter, rate));

        // Slow clients (slowloris): a body trickling below this rate after the grace period, or headers slower than the
        // timeout, end the connection instead of holding a request slot and its buffers.
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MinRequestBodyDataRate = new MinDataRate(
                configuration.GetValue("Uploads:MinBodyBytesPerSecond", 240.0),
                TimeSpan.FromSeconds(configuration.GetValue("Uploads:BodyGraceSeconds", 5.0)));
            kestrel.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(configuration.GetValue("Uploads:HeadersTimeoutSeconds", 15.0));
        });
    }

    /// <summary>
    /// After UseRouting: JSON for requests refused before their handler, 503 for unreachable dependencies, who is calling,
    /// whether they are over their rate, whether they may.
    /// </summary>
    public static void UseClassifierSecurity(this IApplicationBuilder app)
    {
        app.UseMiddleware<BadRequests>();
        app.UseMiddleware<DependencyFailures>();
        app.UseAuthentication();
        // Before authorization, so a flood of unauthorised calls is throttled too.
        app.UseRateLimiter();
        app.UseAuthorization();
    }
}
