namespace WasteClassifier.Api.Extensions;

/// <summary>
/// HEAD wherever GET is answered (monitors and load balancers probe with it; every GET route answered 405): routed and
/// answered as a GET, whose body Kestrel does not send for a HEAD. Its headers (status, Content-Type, Content-Length)
/// are the GET's. Placed before routing; the request log, outside it, still shows HEAD, and so do the HTTP metrics
/// (<see cref="HeadForMetrics"/>, <see cref="RestoreForMetrics"/>). A 405's <c>Allow</c> names HEAD beside GET.
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
