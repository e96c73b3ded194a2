using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Security;

/// <summary>Configuration section <c>RateLimit</c>: a token bucket per API key (by name) or, without a key, per client address.</summary>
public sealed class RateLimitOptions
{
    public const string Section = "RateLimit";

    public bool Enabled { get; set; } = true;

    /// <summary>Requests a client may make at once before it is throttled.</summary>
    public int Burst { get; set; } = 200;

    /// <summary>Requests per second a client may sustain.</summary>
    public int PerSecond { get; set; } = 100;

    /// <summary>
    /// Callers on this machine (loopback) are not limited by default: the operator, the load tester, a local reverse proxy
    /// (which should limit on its own side). Set false when a proxy on the same host forwards plant-network traffic.
    /// </summary>
    public bool ExemptLoopback { get; set; } = true;

    public static void Configure(Microsoft.AspNetCore.RateLimiting.RateLimiterOptions limiter, RateLimitOptions options)
    {
        limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
        limiter.AddPolicy(AccessPolicies.RateLimit, context =>
        {
            if (!options.Enabled || (options.ExemptLoopback && AccessPolicies.IsLocal(context)))
                return RateLimitPartition.GetNoLimiter("unlimited");
            // A valid key is its own partition (one camera line, one client); otherwise the address is.
            var partition = context.User.Identity?.IsAuthenticated == true
                ? $"key:{context.User.Identity.Name}"
                : $"ip:{context.Connection.RemoteIpAddress}";
            return RateLimitPartition.GetTokenBucketLimiter(partition, _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = Math.Max(1, options.Burst),
                TokensPerPeriod = Math.Max(1, options.PerSecond),
                ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                QueueLimit = 0,
                AutoReplenishment = true,
            });
        });
        limiter.OnRejected = async (context, cancellationToken) =>
        {
            var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
            context.HttpContext.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
            await ApiErrors.Result(StatusCodes.Status429TooManyRequests, "rate_limited",
                $"too many requests from this client; retry after {retryAfter} s").ExecuteErrorAsync(context.HttpContext);
        };
    }
}
