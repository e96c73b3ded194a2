using Microsoft.AspNetCore.OpenApi;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using WasteClassifier.Api.Security;

namespace WasteClassifier.Api.Extensions;

/// <summary>
/// <c>/openapi/v1.json</c>, built once per process and served as the same bytes: MapOpenApi rebuilt it on every request
/// (tens of ms of CPU each, outside the rate limit), so anyone could keep the API busy with it. Nothing in it depends on
/// the request (<see cref="RelativeServerAsync"/>), so one copy is right for every caller.
/// </summary>
public sealed class OpenApiDocumentCache(IServiceProvider services, IOptionsMonitor<OpenApiOptions> options)
{
    public const string DocumentName = "v1";
    public const string Path = "/openapi/v1.json";

    private readonly Lock _lock = new();
    private byte[]? _json;
    private Task<byte[]>? _building;

    /// <summary>
    /// The document as JSON: built by the first request; those that come meanwhile wait for that build, each as long as its
    /// own client stays. A failed build is not kept.
    /// </summary>
    public async Task<byte[]> GetAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _json) is { } json) return json;
        Task<byte[]> building;
        lock (_lock)
        {
            if (_json is { } built) return built;
            // Not the request's token (as StatsSnapshots): if the first client leaves, those waiting still get this build.
            building = _building ??= BuildAndKeepAsync();
        }
        return await building.WaitAsync(cancellationToken);
    }

    private async Task<byte[]> BuildAndKeepAsync()
    {
        await Task.Yield(); // out of the lock: the build is tens of ms of CPU
        try
        {
            var document = await services.GetRequiredKeyedService<IOpenApiDocumentProvider>(DocumentName).GetOpenApiDocumentAsync(CancellationToken.None);
            using var buffer = new MemoryStream();
            await document.SerializeAsJsonAsync(buffer, options.Get(DocumentName).OpenApiVersion, CancellationToken.None);
            var json = buffer.ToArray();
            Volatile.Write(ref _json, json);
            return json;
        }
        finally
        {
            lock (_lock) _building = null;
        }
    }

    /// <summary>
    /// <c>servers: [{"url": "/"}]</c>: relative, which OpenAPI resolves against where the document was fetched, so it is
    /// right behind any proxy. The generator wrote the request's scheme and Host, which behind a TLS proxy said http (no
    /// forwarded-headers middleware sets them from X-Forwarded-*), and made the document differ per caller. Written rather
    /// than left out, though "/" is what an empty list means: generators warn on a missing list, and Kiota took the
    /// document's own folder (<c>/openapi</c>) as the API's root (microsoft/kiota#2336).
    /// </summary>
    public static Task RelativeServerAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Servers = [new OpenApiServer { Url = "/" }];
        return Task.CompletedTask;
    }

    /// <summary>Serves the cached document, rate limited per client as the API's other reads are (AccessPolicies.RateLimit).</summary>
    public static IEndpointConventionBuilder Map(IEndpointRouteBuilder app) =>
        app.MapGet(Path, async (HttpContext context, OpenApiDocumentCache cache) =>
                TypedResults.Bytes(await cache.GetAsync(context.RequestAborted), "application/json;charset=utf-8"))
            .ExcludeFromDescription().RequireRateLimiting(AccessPolicies.RateLimit);
}
