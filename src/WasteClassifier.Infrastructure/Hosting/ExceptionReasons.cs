using System.Data.Common;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace WasteClassifier.Infrastructure.Hosting;

/// <summary>
/// An exception in words a client or a health probe may read: its type and codes only (a socket error, an HTTP request
/// error, a SQL state), never its message, which can carry host names, connection strings, credentials or a server's
/// response text. The full exception belongs in the log.
/// </summary>
public static partial class ExceptionReasons
{
    /// <summary>E.g. <c>NpgsqlException: ConnectionRefused</c>, <c>PostgresException: 28P01</c>, <c>HttpRequestException: NameResolutionError</c>.</summary>
    public static string Of(Exception e)
    {
        var codes = new List<string>();
        for (Exception? inner = e; inner is not null && codes.Count < 3; inner = inner.InnerException)
        {
            var code = inner switch
            {
                SocketException socket => socket.SocketErrorCode.ToString(),
                HttpRequestException { StatusCode: { } status } => ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture),
                HttpRequestException { HttpRequestError: not HttpRequestError.Unknown } http => http.HttpRequestError.ToString(),
                Microsoft.Data.Sqlite.SqliteException sqlite => $"SQLite error {sqlite.SqliteErrorCode}",
                DbException { SqlState: { } state } when IsCode(state) => state,
                TimeoutException => "timeout",
                _ => null,
            };
            if (code is not null && !codes.Contains(code)) codes.Add(code);
        }
        return codes.Count == 0 ? e.GetType().Name : $"{e.GetType().Name}: {string.Join(", ", codes)}";
    }

    /// <summary>
    /// The failure in words for a log and a key to log it once per reason by: its cause's message, kind and codes. EF's
    /// retrying strategy ends an outage in <see cref="Microsoft.EntityFrameworkCore.Storage.RetryLimitExceededException"/>,
    /// whose message is the same whatever the cause: its inner exception is the cause.
    /// </summary>
    public static string LogReason(Exception e)
    {
        var cause = Cause(e);
        return $"{cause.Message} ({Of(cause)})";
    }

    /// <summary>The exception that says what went wrong, under the wrappers that say only that the tries ran out.</summary>
    public static Exception Cause(Exception e) =>
        e is Microsoft.EntityFrameworkCore.Storage.RetryLimitExceededException { InnerException: { } inner } ? Cause(inner) : e;

    /// <summary>A time-out anywhere in the chain: Npgsql's command timeout is an NpgsqlException around a <see cref="TimeoutException"/>.</summary>
    public static bool IsTimeout(Exception e)
    {
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
            if (inner is TimeoutException) return true;
        return false;
    }

    /// <summary>A table that does not exist (migrations not applied): PostgreSQL's undefined_table (42P01), SQLite's "no such table".</summary>
    public static bool IsMissingTable(Exception e) => e switch
    {
        System.Data.Common.DbException { SqlState: "42P01" } => true,
        Microsoft.Data.Sqlite.SqliteException sqlite => sqlite.Message.Contains("no such table", StringComparison.Ordinal),
        _ => e.InnerException is { } inner && IsMissingTable(inner),
    };

    /// <summary>A code from a server (an S3 error code, a SQL state) that is a code, not free text.</summary>
    public static bool IsCode(string? code) => code is not null && Code().IsMatch(code);

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex Code();
}
