using System.Text.RegularExpressions;
using Serilog.Events;

namespace WasteClassifier.Api.Observability;

/// <summary>
/// The request log's path, with credentials taken out: the folder store's upload URL (<c>PUT /v1/uploads/{id}/content</c>)
/// is authorised by its id alone, so a log line with the id would let its reader upload in the client's place until it
/// expires. Matched on the path as sent (any case, encoded or not), so a request that matched no route is redacted too.
/// </summary>
public static partial class RequestLogPaths
{
    public const string Redacted = "***";

    public static string Redact(string path) => UploadContent().Replace(path, $"$1{Redacted}$2");

    /// <summary>Serilog's request-log properties (RequestMethod, RequestPath, StatusCode, Elapsed), the path redacted.</summary>
    public static IEnumerable<LogEventProperty> Properties(HttpContext context, string path, double elapsedMs, int statusCode) =>
    [
        new("RequestMethod", new ScalarValue(context.Request.Method)),
        new("RequestPath", new ScalarValue(Redact(path))),
        new("StatusCode", new ScalarValue(statusCode)),
        new("Elapsed", new ScalarValue(elapsedMs)),
    ];

    [GeneratedRegex("(/uploads/)[^/?]+(/content)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex UploadContent();
}
