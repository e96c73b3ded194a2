using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc;
using WasteClassifier.Api.Extensions;
using WasteClassifier.Api.Ingestion;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Apis;

/// <summary>Per-source results: <c>GET /v1/sources</c> and <c>GET /v1/sources/{name}/composition</c>, as JSON or CSV.</summary>
public static class SourcesApi
{
    private const string CompositionSuffix = "/composition";

    /// <summary>The name in a composition's path for the images sent without a source: no source name can be "-".</summary>
    public const string WithoutSourceName = "-";

    public static RouteGroupBuilder MapSourcesApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/v1/sources").WithTags("Sources");
        api.MapGet("/", ListAsync).WithName("ListSources").WithSummary("Every source with its counts and first/last seen (JSON, or CSV with Accept: text/csv or ?format=csv)")
            .Produces<SourceList>().AlsoAnswers("text/csv").ProducesErrors(StatusCodes.Status400BadRequest);
        // Source names may contain '/', so the name is everything before the final "/composition".
        api.MapGet("/{**path}", CompositionAsync).WithName("SourceComposition")
            .WithMetadata(new DocumentedRoute("/v1/sources/{name}/composition", "path", "name",
                $"the source's name ('/' allowed), or {WithoutSourceName} for the images sent without a source"))
            .WithSummary("/v1/sources/{name}/composition?from=&to=&bucket=minute|hour|day: counts and shares per class per time bucket and overall")
            .Produces<SourceReports.Composition>().AlsoAnswers("text/csv")
            .ProducesErrors(StatusCodes.Status400BadRequest, StatusCodes.Status404NotFound);
        return api;
    }

    /// <summary>The answer to <c>GET /v1/sources</c>: each source, and the images sent without one (null when there are none).</summary>
    public sealed record SourceList(IReadOnlyList<SourceReports.SourceSummary> Sources, SourceReports.SourceSummary? WithoutSource);

    public static async Task<IResult> ListAsync(HttpRequest request, [FromServices] SourceReports reports, string? format, CancellationToken cancellationToken)
    {
        if (FormatError(format) is { } bad) return bad;
        var (sources, withoutSource) = await reports.ListAsync(cancellationToken);
        if (!WantsCsv(request, format)) return TypedResults.Ok(new SourceList(sources, withoutSource));
        // The images sent without a source are the row with an empty name (a source's name is never empty).
        var csv = new StringBuilder("name,total,queued,processing,completed,failed,duplicates,first_seen,last_seen\n");
        foreach (var s in withoutSource is null ? sources : [.. sources, withoutSource])
            csv.Append(CultureInfo.InvariantCulture, $"{Field(s.Name ?? "")},{s.Total},{s.Queued},{s.Processing},{s.Completed},{s.Failed},{s.Duplicates},{Time(s.FirstSeen)},{Time(s.LastSeen)}\n");
        return Csv(csv, "sources.csv");
    }

    public static async Task<IResult> CompositionAsync(string path, HttpRequest request, [FromServices] SourceReports reports, [FromServices] TimeProvider clock,
        string? from, string? to, string? bucket, string? format, CancellationToken cancellationToken)
    {
        if (!path.EndsWith(CompositionSuffix, StringComparison.Ordinal) || path.Length == CompositionSuffix.Length)
            return ApiErrors.Result(StatusCodes.Status404NotFound, "not_found", "no such resource; see /v1/sources/{name}/composition");
        // Clients (generated ones, Scalar) write a '/' in the name as %2F, which the server leaves encoded in the path while
        // decoding the rest: only %2F is decoded here (decoding all again turned %252D into '-'). A %2F the server made of
        // %252F is left as it is, a '%' no source name holds.
        var name = path[..^CompositionSuffix.Length];
        var raw = request.HttpContext.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (raw is null || !raw.Split('?', 2)[0].Contains("%25", StringComparison.Ordinal))
            name = name.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
        var source = name == WithoutSourceName ? null : name;
        if (source is not null && SourceNames.Validate(source) is { } invalid) return invalid;
        var size = bucket ?? "hour";
        if (!SourceReports.Buckets.Contains(size))
            return Bad("invalid_bucket", $"bucket must be one of {string.Join(", ", SourceReports.Buckets)}");
        if (FormatError(format) is { } bad) return bad;
        if (!TryTime(from, out var start)) return Bad("invalid_from", TimeError("from", from!, "2026-11-28T08:00:00Z"));
        if (!TryTime(to, out var end)) return Bad("invalid_to", TimeError("to", to!, "2026-11-28T09:00:00Z"));
        if (start is not null && end is not null && start >= end) return Bad("invalid_range", "from must be before to");

        if (await reports.SpanAsync(source, cancellationToken) is not { } span)
            return ApiErrors.Result(StatusCodes.Status404NotFound, "unknown_source",
                source is null ? "no classification was sent without a source" : $"no classification has source '{source}'");
        // Defaults: from the source's first image to just after its last (or now, when later). The default from never passes
        // a given to: a window that ends before this source's first image (a dashboard's, across sources) is an empty report.
        var until = end ?? SourceReports.DefaultEnd(span.Last, clock.GetUtcNow().UtcDateTime);
        var since = start ?? (span.First < until ? span.First : until);
        // Again with to's default: a from after now was answered as an empty report whose from was after its to.
        if (start is not null && since >= until)
            return Bad("invalid_range", string.Create(CultureInfo.InvariantCulture,
                $"from must be before to; with to's default (now, or just after the source's last image) they are {since:O} and {until:O}"));
        var buckets = Math.Ceiling((until - since) / SourceReports.StepOf(size));
        if (buckets > SourceReports.MaxBuckets)
            return Bad("invalid_range", string.Create(CultureInfo.InvariantCulture,
                $"{since:O} to {until:O} spans {buckets:N0} {size} buckets; the limit is {SourceReports.MaxBuckets:N0}: narrow from/to or use a larger bucket"));
        var composition = await reports.CompositionAsync(source, since, until, size, cancellationToken);
        if (!WantsCsv(request, format)) return TypedResults.Ok(composition);
        return Csv(CompositionCsv(composition), $"composition-{(source ?? "no-source").Replace('/', '_').Replace(':', '_')}.csv");
    }

    /// <summary>
    /// Long format (one row per bucket and class), so a spreadsheet can pivot it; "overall" rows cover the whole range.
    /// Each row ends with its bucket's totals as the JSON names them, repeated on every row of the bucket: without them
    /// duplicates (counted in the classes) could not be subtracted and failed or pending images were in no row. A report
    /// in which nothing was classified has no class, so each bucket is one row with an empty class. The first seven
    /// columns are as they were before the totals were appended.
    /// </summary>
    public static StringBuilder CompositionCsv(SourceReports.Composition composition)
    {
        var csv = new StringBuilder("source,scope,bucket_start,bucket_end,class,count,share,total,classified,pending,failed,duplicates\n");
        var source = Field(composition.Source ?? "");
        void Rows(string scope, SourceReports.Slice slice)
        {
            var start = $"{source},{scope},{Time(slice.Start)},{Time(slice.End)},";
            var totals = string.Create(CultureInfo.InvariantCulture, $"{slice.Total},{slice.Classified},{slice.Pending},{slice.Failed},{slice.Duplicates}");
            if (slice.Classes.Count == 0) csv.Append(start).Append(",0,0,").Append(totals).Append('\n');
            foreach (var (name, share) in slice.Classes)
                csv.Append(CultureInfo.InvariantCulture, $"{start}{Field(name)},{share.Count},{share.Share.ToString("0.######", CultureInfo.InvariantCulture)},{totals}\n");
        }
        foreach (var slice in composition.Buckets) Rows(composition.Bucket, slice);
        Rows("overall", composition.Overall);
        return csv;
    }

    private static bool WantsCsv(HttpRequest request, string? format) =>
        format is not null ? format == "csv" : request.Headers.Accept.Any(a => a?.Contains("text/csv", StringComparison.OrdinalIgnoreCase) == true);

    private static IResult? FormatError(string? format) =>
        format is null or "csv" or "json" ? null : Bad("invalid_format", "format must be json or csv");

    private static IResult Csv(StringBuilder csv, string fileName) =>
        TypedResults.File(Encoding.UTF8.GetBytes(csv.ToString()), "text/csv; charset=utf-8", fileName);

    private static bool TryTime(string? text, out DateTime? value)
    {
        value = null;
        if (string.IsNullOrEmpty(text)) return true;
        if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed)) return false;
        value = parsed.UtcDateTime;
        return true;
    }

    /// <summary>
    /// Why a time did not parse. An offset's '+' sent unencoded in a query string reads as a space ("08:00:00 02:00"),
    /// which the message showed without saying why: it says to send '+' as %2B.
    /// </summary>
    private static string TimeError(string name, string value, string example) =>
        $"{name} '{value}' is not a time; use ISO 8601, e.g. {example}" +
        (value.Contains(' ', StringComparison.Ordinal)
            ? $" (a '+' in a query string reads as a space: send an offset's '+' as %2B, e.g. {name}={example[..^1]}%2B02:00, or use Z)"
            : "");

    private static string Time(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);

    private static string Field(string value) =>
        value.IndexOfAny([',', '"', '\n', '\r']) < 0 ? value : $"\"{value.Replace("\"", "\"\"")}\"";

    private static IResult Bad(string error, string message) => ApiErrors.Result(StatusCodes.Status400BadRequest, error, message);
}
