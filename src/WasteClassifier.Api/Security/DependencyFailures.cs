using System.Data.Common;
using System.Net.Sockets;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Security;

/// <summary>
/// While the database or the object store is unreachable, a request is refused with 503, Retry-After and the usual JSON
/// error (no stack trace, no connection string): nothing was accepted, so the client retries. A 202 is only ever sent
/// after the row is committed.
/// </summary>
public sealed class DependencyFailures(RequestDelegate next, ILogger<DependencyFailures> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (Exception e) when (IsUnavailable(e) && !context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            // The type and message only: driver messages name the host, never the password.
            logger.LogWarning("{Method} {Path} refused, a dependency is unavailable: {Type}: {Reason}", context.Request.Method, context.Request.Path, e.GetType().Name, e.Message);
            context.Response.Clear();
            context.Response.Headers.RetryAfter = "5";
            await ApiErrors.Result(StatusCodes.Status503ServiceUnavailable, "service_unavailable",
                "the database or object store is unavailable; nothing was accepted, retry shortly").ExecuteAsync(context);
        }
    }

    public static bool IsUnavailable(Exception e) => e switch
    {
        DbException or SocketException or TimeoutException or HttpRequestException or Minio.Exceptions.MinioException => true,
        Microsoft.EntityFrameworkCore.DbUpdateException or InvalidOperationException or Microsoft.EntityFrameworkCore.Storage.RetryLimitExceededException
            when e.InnerException is { } inner => IsUnavailable(inner),
        AggregateException aggregate => aggregate.InnerExceptions.Any(IsUnavailable),
        _ => false,
    };
}
