using System.Text.RegularExpressions;
using Serilog.Core;
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

    /// <summary>The upload URL's id, and the staged upload's object key (<c>uploads/{id:N}</c>, as store errors name it).</summary>
    public static string Redact(string path) => UploadKey().Replace(UploadContent().Replace(path, $"$1{Redacted}$2"), $"$1{Redacted}");

    /// <summary>Serilog's request-log properties (RequestMethod, RequestPath, StatusCode, Elapsed), the path redacted.</summary>
    public static IEnumerable<LogEventProperty> Properties(HttpContext context, string path, double elapsedMs, int statusCode) =>
    [
        new("RequestMethod", new ScalarValue(context.Request.Method)),
        new("RequestPath", new ScalarValue(Redact(path))),
        new("StatusCode", new ScalarValue(statusCode)),
        new("Elapsed", new ScalarValue(elapsedMs)),
    ];

    /// <summary>
    /// Redacts the <c>RequestPath</c> (and <c>Path</c>) of every log event, not only the request log's: ASP.NET Core puts the
    /// raw path in each request's logging scope, so a warning logged while handling an upload would carry its id.
    /// </summary>
    public sealed class Enricher : ILogEventEnricher
    {
        private static readonly string[] Names = ["RequestPath", "Path"];

        public void Enrich(LogEvent logEvent, ILogEventPropertyFactory propertyFactory)
        {
            foreach (var name in Names)
            {
                if (logEvent.Properties.TryGetValue(name, out var value) && value is ScalarValue { Value: string path } && Redact(path) is var redacted && redacted != path)
                    logEvent.AddOrUpdateProperty(new LogEventProperty(name, new ScalarValue(redacted)));
            }
        }
    }

    [GeneratedRegex("(/uploads/)[^/?]+(/content)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex UploadContent();

    [GeneratedRegex(@"(uploads[/\\])[0-9a-f]{32}", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex UploadKey();
}
