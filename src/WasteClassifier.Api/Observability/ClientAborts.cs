namespace WasteClassifier.Api.Observability;

/// <summary>
/// A request its client gave up on (a load test stopped with Ctrl+C, a long poll closed) ends as 499, as nginx logs it:
/// its cancellation reached the request log as an exception, logged as an error that responded 500 (while the HTTP
/// metrics counted a 200). Only the client's abort (<see cref="HttpContext.RequestAborted"/>): a cancellation or timeout
/// of the server's own, with the client still there, stays an error. Runs inside the request log and the HTTP metrics,
/// so both see the 499.
/// </summary>
public sealed class ClientAborts(RequestDelegate next, ILogger<ClientAborts> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            logger.LogDebug("{Method} {Path}: the client closed the request ({Type})", context.Request.Method, RequestLogPaths.Redact(context.Request.Path.Value ?? ""), e.GetType().Name);
            // A response already started keeps the status it was sent with; nobody reads either.
            if (!context.Response.HasStarted) context.Response.StatusCode = StatusCodes.Status499ClientClosedRequest;
        }
    }
}
