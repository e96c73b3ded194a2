namespace WasteClassifier.Api.Extensions;

/// <summary>
/// HEAD wherever GET is answered (monitors and load balancers probe with it; every GET route answered 405): routed and
/// answered as a GET, whose body Kestrel does not send for a HEAD. Its headers (status, Content-Type, Content-Length)
/// are the GET's. Placed before routing; the request log, outside it, still shows HEAD. A 405's <c>Allow</c> names HEAD
/// beside GET.
/// </summary>
public sealed class HeadRequests(RequestDelegate next)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var head = HttpMethods.IsHead(context.Request.Method);
        if (head) context.Request.Method = HttpMethods.Get;
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
}
