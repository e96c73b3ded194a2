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
            // The type and message only: driver messages name the host, never the password; a store's names no upload id.
            logger.LogWarning("{Method} {Path} refused, a dependency is unavailable: {Type}: {Reason}", context.Request.Method, Observability.RequestLogPaths.Redact(context.Request.Path.Value ?? ""), e.GetType().Name, Observability.RequestLogPaths.Redact(e.Message));
            context.Response.Clear();
            context.Response.Headers.RetryAfter = "5";
            await ApiErrors.Result(StatusCodes.Status503ServiceUnavailable, "service_unavailable",
                "the database or object store is unavailable; nothing was accepted, retry shortly").ExecuteErrorAsync(context);
        }
        catch (Exception e) when (IsDataError(e) && !context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            // A bug (a value the schema refuses), not an outage: the same request would fail again, so no Retry-After.
            logger.LogError(e, "{Method} {Path} failed: the database refused the data", context.Request.Method, Observability.RequestLogPaths.Redact(context.Request.Path.Value ?? ""));
            context.Response.Clear();
            await ApiErrors.Result(StatusCodes.Status500InternalServerError, "internal_error",
                "the database refused to store this request; nothing was accepted, and retrying it will not help").ExecuteErrorAsync(context);
        }
    }

    public static bool IsUnavailable(Exception e) => e switch
    {
        _ when IsDataError(e) => false,
        DbException or SocketException or TimeoutException or HttpRequestException or Minio.Exceptions.MinioException => true,
        // The folder store's failed write or read, not every IOException: one from elsewhere is a bug, and a 503 would have it retried.
        WasteClassifier.Infrastructure.Storage.ObjectStoreWriteException or WasteClassifier.Infrastructure.Storage.ObjectStoreReadException => true,
        Microsoft.EntityFrameworkCore.DbUpdateException or InvalidOperationException or Microsoft.EntityFrameworkCore.Storage.RetryLimitExceededException
            when e.InnerException is { } inner => IsUnavailable(inner),
        AggregateException aggregate => aggregate.InnerExceptions.Any(IsUnavailable),
        _ => false,
    };

    /// <summary>
    /// The database refused the data itself (PostgreSQL classes 22 data exception and 23 integrity constraint violation;
    /// SQLite constraint and type mismatch errors): a request that will never succeed, not an unavailable database. A
    /// unique violation is not one: it is two requests racing for the same row (two labels of one image), and the
    /// retry finds the row the other wrote.
    /// </summary>
    public static bool IsDataError(Exception e) => e switch
    {
        Npgsql.PostgresException postgres => postgres.SqlState != Npgsql.PostgresErrorCodes.UniqueViolation
            && (postgres.SqlState.StartsWith("22", StringComparison.Ordinal) || postgres.SqlState.StartsWith("23", StringComparison.Ordinal)),
        Microsoft.Data.Sqlite.SqliteException sqlite => sqlite.SqliteErrorCode == SqliteMismatch
            || (sqlite.SqliteErrorCode == SqliteConstraint && sqlite.SqliteExtendedErrorCode is not (SqliteConstraintUnique or SqliteConstraintPrimaryKey)),
        AggregateException aggregate => aggregate.InnerExceptions.Any(IsDataError),
        _ => e.InnerException is { } inner && IsDataError(inner),
    };

    internal const int SqliteConstraint = 19;
    private const int SqliteMismatch = 20;
    private const int SqliteConstraintPrimaryKey = 1555;
    internal const int SqliteConstraintUnique = 2067;
}
