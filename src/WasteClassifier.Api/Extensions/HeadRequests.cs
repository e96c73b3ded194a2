using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace WasteClassifier.Api.Extensions;

/// <summary>
/// HEAD wherever GET is answered (monitors and load balancers probe with it; every GET route answered 405): routed and
/// answered as a GET, whose body Kestrel does not send for a HEAD. Its headers (status, Content-Type, Content-Length)
/// are the GET's. Placed before routing; the request log, outside it, still shows HEAD, and so do the HTTP metrics
/// (<see cref="HeadForMetrics"/>, <see cref="RestoreForMetrics"/>). A 405's <c>Allow</c> names HEAD beside GET, and the
/// OpenAPI document lists it beside every GET (<see cref="DocumentAsync"/>).
/// </summary>
public sealed class HeadRequests(RequestDelegate next)
{
    private static readonly object HeadKey = new();

    public async Task InvokeAsync(HttpContext context)
    {
        var head = HttpMethods.IsHead(context.Request.Method);
        if (head)
        {
            context.Request.Method = HttpMethods.Get;
            context.Items[HeadKey] = true;
        }
        try
        {
            await next(context);
        }
        finally
        {
            if (head) context.Request.Method = HttpMethods.Head;
        }
        if (context.Response is { StatusCode: StatusCodes.Status405MethodNotAllowed, HasStarted: false } response
            && response.Headers.Allow.ToString() is { Length: > 0 } allow)
        {
            var methods = allow.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (methods.Contains(HttpMethods.Get, StringComparer.OrdinalIgnoreCase) && !methods.Contains(HttpMethods.Head, StringComparer.OrdinalIgnoreCase))
                response.Headers.Allow = string.Join(", ", [.. methods, HttpMethods.Head]);
        }
    }

    /// <summary>
    /// Lists HEAD beside every GET in <c>/openapi/v1.json</c>, as it is answered: the GET's parameters, statuses and response
    /// headers, no bodies. The generator lists only the mapped GET, so clients and generators could not tell HEAD was there.
    /// Its <c>operationId</c> is the GET's with <c>Head</c> after it (operation ids are unique in a document). Run after the
    /// transformers that add or change operations.
    /// </summary>
    public static Task DocumentAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        foreach (var item in document.Paths?.Values.OfType<OpenApiPathItem>() ?? [])
        {
            if (item.Operations?.GetValueOrDefault(HttpMethod.Get) is not { } get || item.Operations.ContainsKey(HttpMethod.Head)) continue;
            var responses = new OpenApiResponses();
            foreach (var (status, response) in get.Responses ?? [])
                responses[status] = new OpenApiResponse
                {
                    Description = response.Description,
                    Headers = response.Headers is null ? null : new Dictionary<string, IOpenApiHeader>(response.Headers),
                };
            item.Operations[HttpMethod.Head] = new OpenApiOperation
            {
                Tags = get.Tags is null ? null : new HashSet<OpenApiTagReference>(get.Tags),
                Summary = get.Summary,
                Description = "As the GET, without its body: the same status and headers.",
                OperationId = get.OperationId is { } id ? id + "Head" : null,
                Parameters = get.Parameters?.ToList(),
                Responses = responses,
                Deprecated = get.Deprecated,
                Security = get.Security?.ToList(),
            };
        }
        return Task.CompletedTask;
    }

    /// <summary>
    /// Placed just outside the HTTP metrics (after routing, which has chosen the GET route): HEAD again while they start the
    /// request, so the in-progress gauge, which takes its labels then, shows HEAD as the count and duration do.
    /// <see cref="RestoreForMetrics"/>, just inside them, makes it a GET again for the route.
    /// </summary>
    public sealed class HeadForMetrics(RequestDelegate next)
    {
        public Task InvokeAsync(HttpContext context)
        {
            if (context.Items.ContainsKey(HeadKey)) context.Request.Method = HttpMethods.Head;
            return next(context);
        }
    }

    /// <summary>
    /// Placed just inside the HTTP metrics: a GET for the route and everything inside (as <see cref="HeadRequests"/> made it),
    /// then HEAD again before they record the request, which they label with the method as it is when it has run; they
    /// counted every HEAD as a GET.
    /// </summary>
    public sealed class RestoreForMetrics(RequestDelegate next)
    {
        public async Task InvokeAsync(HttpContext context)
        {
            var head = context.Items.ContainsKey(HeadKey);
            if (head) context.Request.Method = HttpMethods.Get;
            try
            {
                await next(context);
            }
            finally
            {
                if (head) context.Request.Method = HttpMethods.Head;
            }
        }
    }
}
