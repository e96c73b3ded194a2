using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Security;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Models;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Apis;

/// <summary>Submit images, then poll their classifications: <c>/v1/classifications</c>.</summary>
public static partial class ClassificationsApi
{
    public const string ImageField = "image";
    public const int MaxWaitSeconds = 30;

    public static RouteGroupBuilder MapClassificationsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/v1/classifications").WithTags("Classifications");
        // 400 and 413 are an ApiError, with the refused files when every file was refused.
        api.MapPost("/", SubmitAsync).WithName("SubmitClassifications").WithSummary("Upload one or more images (field 'image') to be classified").DisableAntiforgery()
            .AcceptsForm(new ApiResponses.FormBody(ImageField, ManyFiles: true, ["source"]))
            .Produces<SubmittedClassifications>(StatusCodes.Status202Accepted)
            .Produces<FilesRefused>(StatusCodes.Status400BadRequest).Produces<FilesRefused>(StatusCodes.Status413PayloadTooLarge)
            .ProducesErrors(StatusCodes.Status403Forbidden, StatusCodes.Status422UnprocessableEntity);
        api.MapGet("/{id:guid}", GetAsync).WithName("GetClassification").WithSummary("One classification: status, result and timings; ?wait=S holds the request until it is finished (long polling)")
            .Produces<ClassificationView>().ProducesErrors(StatusCodes.Status400BadRequest, StatusCodes.Status404NotFound);
        api.MapGet("/", ListAsync).WithName("ListClassifications").WithSummary("Classifications, newest first, filtered by source, status and predicted_class")
            .Produces<ClassificationPage>().ProducesErrors(StatusCodes.Status400BadRequest);
        api.MapGet("/finished", FinishedAsync).WithName("ListFinishedClassifications")
            .WithSummary("Classifications finished since a time or a cursor, oldest first: what finished since a client's last run")
            .Produces<FinishedPage>().ProducesErrors(StatusCodes.Status400BadRequest);
        return api;
    }

    public static async Task<IResult> SubmitAsync(HttpRequest request, [FromServices] ClassificationSubmitter submitter, [FromServices] UploadOptions options, CancellationToken cancellationToken)
    {
        if (IdempotencyKeyHeader.Read(request, out var key) is { } invalidKey) return invalidKey;
        var (upload, error) = await MultipartUploads.ReadAsync(request, ImageField, options, cancellationToken);
        if (error is not null) return error;
        var source = upload!.Form["source"].ToString();
        if (SourceNames.Validate(source) is { } invalid) return invalid;
        if (SourceBindings.Resolve(request.HttpContext.User, source, out var bound) is { } refused) return refused;

        var result = await submitter.SubmitAsync(upload.Files, bound, key, cancellationToken);
        if (result.KeyReused) return IdempotencyKeyHeader.Reused("other files, file contents or source");
        Observability.ApiMetrics.Submitted(result);
        if (result.Items.Count == 0)
        {
            // Everything was refused: answer with the first reason, and the per-file list.
            var first = result.Rejected[0];
            var status = result.Rejected.All(r => r.Error == ImageIntake.FileTooLarge) ? StatusCodes.Status413PayloadTooLarge : StatusCodes.Status400BadRequest;
            var message = result.Rejected.Count == 1 ? first.Message : $"none of the {result.Rejected.Count} files was accepted; see rejected";
            return TypedResults.Json(new FilesRefused(first.Error, message, result.Rejected), statusCode: status);
        }
        return TypedResults.Json(new SubmittedClassifications(result.Items, result.Rejected, result.Replayed), statusCode: StatusCodes.Status202Accepted);
    }

    /// <summary>The answer to a submission: the accepted files' classifications, the refused files, and whether an Idempotency-Key replayed it.</summary>
    public sealed record SubmittedClassifications(IReadOnlyList<AcceptedImage> Items, IReadOnlyList<RejectedImage> Rejected, bool Replayed);

    /// <summary>
    /// An <see cref="ApiError"/> that also lists each refused file (<c>rejected</c>, when every file of an upload was refused;
    /// optional, so the document does not require it of the route's other 400s).
    /// </summary>
    public sealed record FilesRefused(string Error, string Message, IReadOnlyList<RejectedImage>? Rejected = null);

    /// <param name="wait">Long polling: seconds (up to <see cref="MaxWaitSeconds"/>) to hold the request while the
    /// classification is queued or processing; it answers as soon as it is finished, or with its state at the end.</param>
    public static async Task<IResult> GetAsync(Guid id, string? wait, ClassifierDbContext db, [FromServices] ClassificationResultWaiter waiter, CancellationToken cancellationToken)
    {
        var waitFor = TimeSpan.Zero;
        if (wait is not null)
        {
            if (!double.TryParse(wait, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var seconds)
                || !double.IsFinite(seconds) || seconds is < 0 or > MaxWaitSeconds) // NaN passes the range check
                return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_wait", $"wait must be a number of seconds from 0 to {MaxWaitSeconds}");
            waitFor = TimeSpan.FromSeconds(seconds);
        }

        // Watched before the read, so a result announced between the two is not missed.
        using var watch = waitFor > TimeSpan.Zero ? waiter.Watch(id) : null;
        Classification? row = null;
        // A row this process queued and nobody has announced finished exists and is not final: no need to read it first
        // (a client that submits and then polls).
        if (watch is null || !waiter.IsQueuedHere(id))
        {
            row = await FindAsync(db, id, cancellationToken);
            if (row is null) return NotFound(id);
            if (watch is null || ClassificationStatus.IsFinal(row.Status)) return TypedResults.Ok(ClassificationView.From(row));
        }
        row = await watch.WaitAsync(waitFor, cancellationToken) ?? await FindAsync(db, id, cancellationToken) ?? row;
        return row is null ? NotFound(id) : TypedResults.Ok(ClassificationView.From(row));
    }

    /// <summary>The length of <c>classifications.predicted_class</c>.</summary>
    private const int MaxClassLength = 64;

    private static IResult NotFound(Guid id) => ApiErrors.Result(StatusCodes.Status404NotFound, "not_found", $"no classification with id {id}");

    private static Task<Classification?> FindAsync(ClassifierDbContext db, Guid id, CancellationToken cancellationToken) =>
        db.Classifications.Include(c => c.Image).AsNoTracking().FirstOrDefaultAsync(c => c.Id == id, cancellationToken);

    public static async Task<IResult> ListAsync(ClassifierDbContext db, [FromServices] ModelRegistry registry, string? source, string? status, int? limit,
        string? cursor, [FromQuery(Name = "predicted_class")] string? predictedClass, CancellationToken cancellationToken)
    {
        var size = limit ?? 50;
        if (size is < 1 or > 500) return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_limit", "limit must be between 1 and 500");
        if (status is not null && !ClassificationStatus.All.Contains(status))
            return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_status", $"status must be one of {string.Join(", ", ClassificationStatus.All)}");

        // As a submission checks it: a NUL reached PostgreSQL, which refused the query (500).
        // "-" lists the images sent without a source, as it names them in /v1/sources/-/composition (no source can be "-").
        var withoutSource = source == SourcesApi.WithoutSourceName;
        if (source is not null && !withoutSource && SourceNames.Validate(source) is { } invalid) return invalid;
        // Any name a model has had (an older one's too), but one that fits the column and holds no control character (a NUL).
        if (predictedClass is not null && (predictedClass.Length is 0 or > MaxClassLength || predictedClass.Any(char.IsControl)))
            return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_predicted_class",
                $"predicted_class must be a class name of 1–{MaxClassLength} characters, e.g. glass");
        // A misspelt class (Glass, plastics) listed nothing, as if there were no such results: one no model has and no
        // result holds is refused, naming the classes. A class of an older model is one its results still hold.
        if (predictedClass is not null && await UnknownClassAsync(db, registry, predictedClass, cancellationToken) is { } known)
            return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_predicted_class",
                $"no model has the class '{predictedClass}' and no result holds it; the classes are: {string.Join(", ", known)}");

        var query = db.Classifications.Include(c => c.Image).AsNoTracking();
        if (withoutSource) query = query.Where(c => c.Source == null);
        else if (!string.IsNullOrEmpty(source)) query = query.Where(c => c.Source == source);
        if (status is not null) query = query.Where(c => c.Status == status);
        // Filtered along the newest-first index walk, so a page reads about its size ÷ the class's share of rows; the
        // web interface's history filtered each fetched page instead, and showed nothing while older pages matched.
        if (predictedClass is not null) query = query.Where(c => c.PredictedClass == predictedClass);
        if (cursor is not null)
        {
            if (!TryDecodeCursor(cursor, out var after, out var afterId))
                return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_cursor", "cursor is not one this API returned");
            // Rows after the cursor, written with created_at <= after outside the OR so it bounds the index walk: as
            // "created_at < after OR (created_at = after AND id < after_id)" PostgreSQL read every newer row again per page.
            query = query.Where(c => c.CreatedAt <= after && (c.CreatedAt < after || c.Id < afterId));
        }
        var rows = await query.OrderByDescending(c => c.CreatedAt).ThenByDescending(c => c.Id).Take(size + 1).ToListAsync(cancellationToken);
        var next = rows.Count > size ? EncodeCursor(rows[size - 1]) : null;
        return TypedResults.Ok(new ClassificationPage(rows.Take(size).Select(ClassificationView.From).ToList(), next));
    }

    /// <summary>
    /// Null when <paramref name="name"/> is a class of the active model or the product (<see cref="ModelRegistry.ValidLabelsAsync"/>,
    /// the product's alone without a model) or one a stored result holds (an older model's); else those classes.
    /// </summary>
    private static async Task<IReadOnlyList<string>?> UnknownClassAsync(ClassifierDbContext db, ModelRegistry registry, string name, CancellationToken cancellationToken)
    {
        var classes = await registry.ValidLabelsAsync(cancellationToken);
        if (classes.Contains(name) || await db.Classifications.AnyAsync(c => c.PredictedClass == name, cancellationToken)) return null;
        return classes;
    }

    /// <summary>
    /// <c>since</c> as RFC 3339 writes it, with Z or an offset: without one it was read in the server's time zone, and
    /// <c>12/01/2026</c> in whatever order the parser guessed. Fractions to 100 ns, as far as <see cref="DateTime"/> goes.
    /// </summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?([Zz]|[+-][0-9]{2}:[0-9]{2})$")]
    private static partial System.Text.RegularExpressions.Regex Rfc3339();

    /// <summary>Tags the cursors of <see cref="FinishedAsync"/> ('.' is not in base64url): the list's, a created_at position, is refused there.</summary>
    private const string FinishedCursorPrefix = "f.";

    /// <summary>
    /// Finished (completed or failed) classifications, oldest first by <c>completed_at</c> then id, from <paramref name="since"/>
    /// (an RFC 3339 time, inclusive) or after <paramref name="cursor"/>. <c>next_cursor</c> is always given: the position
    /// after the last item, or the one asked for when nothing new finished, for the next page or the next run.
    /// </summary>
    public static async Task<IResult> FinishedAsync(ClassifierDbContext db, TimeProvider clock, [FromServices] FinishedListOptions options, string? since, string? cursor, string? source, int? limit,
        CancellationToken cancellationToken)
    {
        var size = limit ?? 100;
        if (size is < 1 or > 500) return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_limit", "limit must be between 1 and 500");
        if ((since is null) == (cursor is null))
            return ApiErrors.Result(StatusCodes.Status400BadRequest, "missing_position",
                "give since (an RFC 3339 time, e.g. 2026-12-01T00:00:00Z) for the first call, or the next_cursor of the last answer as cursor, not both");
        DateTime after;
        Guid afterId;
        if (since is not null)
        {
            if (!Rfc3339().IsMatch(since)
                || !DateTimeOffset.TryParse(since, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out var time))
                return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_since",
                    $"since must be an RFC 3339 time with Z or an offset, yyyy-MM-ddTHH:mm:ss[.fffffff](Z|±HH:mm), such as 2026-12-01T00:00:00Z (a '+' offset sent as %2B); got '{since}'");
            // Guid.Empty sorts before every id: the rows finished at since itself are listed too.
            (after, afterId) = (time.UtcDateTime, Guid.Empty);
        }
        else if (!cursor!.StartsWith(FinishedCursorPrefix, StringComparison.Ordinal) || !TryDecodeCursor(cursor[FinishedCursorPrefix.Length..], out after, out afterId))
        {
            return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_cursor", "cursor is not a next_cursor of /v1/classifications/finished");
        }
        var withoutSource = source == SourcesApi.WithoutSourceName;
        if (source is not null && !withoutSource && SourceNames.Validate(source) is { } invalid) return invalid;

        var settled = clock.GetUtcNow().UtcDateTime - options.Settle;
        var query = db.Classifications.Include(c => c.Image).AsNoTracking()
            .Where(c => (c.Status == ClassificationStatus.Completed || c.Status == ClassificationStatus.Failed) && c.CompletedAt != null && c.CompletedAt <= settled)
            .Where(c => c.CompletedAt >= after && (c.CompletedAt > after || c.Id > afterId));
        if (withoutSource) query = query.Where(c => c.Source == null);
        else if (!string.IsNullOrEmpty(source)) query = query.Where(c => c.Source == source);
        var rows = await query.OrderBy(c => c.CompletedAt).ThenBy(c => c.Id).Take(size + 1).ToListAsync(cancellationToken);
        var items = rows.Take(size).ToList();
        var next = FinishedCursorPrefix + (items.Count > 0 ? Cursor(items[^1].CompletedAt!.Value, items[^1].Id) : Cursor(after, afterId));
        return TypedResults.Ok(new FinishedPage(items.Select(ClassificationView.From).ToList(), next, rows.Count > size));
    }

    private static string EncodeCursor(Classification row) => Cursor(row.CreatedAt, row.Id);

    private static string Cursor(DateTime time, Guid id) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes($"{time.Ticks}:{id}")).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static bool TryDecodeCursor(string cursor, out DateTime createdAt, out Guid id)
    {
        createdAt = default;
        id = default;
        try
        {
            var padded = cursor.Replace('-', '+').Replace('_', '/');
            padded += new string('=', (4 - padded.Length % 4) % 4);
            var parts = Encoding.UTF8.GetString(Convert.FromBase64String(padded)).Split(':');
            if (parts.Length != 2 || !long.TryParse(parts[0], out var ticks) || !Guid.TryParse(parts[1], out id)) return false;
            // Out of DateTime's range the constructor throws: a forged cursor, not a server error.
            if (ticks is < 0 || ticks > DateTime.MaxValue.Ticks) return false;
            createdAt = new DateTime(ticks, DateTimeKind.Utc);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
