using System.Text.Json;
using HttpJsonOptions = Microsoft.AspNetCore.Http.Json.JsonOptions;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using WasteClassifier.Api.Ingestion;
using WasteClassifier.Api.Security;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Apis;

/// <summary>Direct-to-storage uploads: <c>POST /v1/uploads</c>, PUT the bytes to each URL, then <c>POST /v1/uploads/commit</c>.</summary>
public static class UploadsApi
{
    public sealed record CreateRequest(int? Count, IReadOnlyList<FileRequestBody?>? Files, string? Source);

    public sealed record FileRequestBody(string? Filename, string? ContentType, long? Size);

    public sealed record CommitRequest(IReadOnlyList<Guid>? Ids, string? Source, int? DuplicateWindowSeconds);

    public sealed record UploadView(Guid Id, string Method, string Url, string? Filename, DateTimeOffset ExpiresAt);

    /// <summary>The answer to <c>POST /v1/uploads</c>: where to PUT each file, and where to commit them.</summary>
    public sealed record CreatedUploads(IReadOnlyList<UploadView> Uploads, DateTimeOffset ExpiresAt, string CommitUrl);

    /// <summary>The answer to a commit with at least one accepted upload.</summary>
    public sealed record CommittedUploads(IReadOnlyList<DirectUploads.CommitItem> Items, int Accepted, int Refused);

    /// <summary>An <see cref="ApiError"/> that also lists each upload's outcome (<c>items</c>, when a commit accepted none; optional, as in <see cref="ClassificationsApi.FilesRefused"/>).</summary>
    public sealed record CommitRefused(string Error, string Message, IReadOnlyList<DirectUploads.CommitItem>? Items = null);

    /// <summary>The answer to a PUT of an upload's bytes to the API.</summary>
    public sealed record UploadedContent(Guid Id, long Size);

    public static RouteGroupBuilder MapUploadsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/v1/uploads").WithTags("Uploads");
        // Client writes (like submitting a classification), not admin ones.
        api.MapPost("/", CreateAsync).WithName("CreateUploads").WithSummary("Upload ids and presigned PUT URLs for sending images straight to the object store")
            .DisableAntiforgery().RequireAuthorization(AccessPolicies.Client).WithJsonBodyLimit(app).Accepts<CreateRequest>("application/json")
            .Produces<CreatedUploads>(StatusCodes.Status201Created)
            .ProducesErrors(StatusCodes.Status400BadRequest, StatusCodes.Status403Forbidden, StatusCodes.Status413PayloadTooLarge, StatusCodes.Status415UnsupportedMediaType);
        api.MapPost("/commit", CommitAsync).WithName("CommitUploads").WithSummary("Check the uploaded objects and queue them for classification")
            .DisableAntiforgery().RequireAuthorization(AccessPolicies.Client).WithJsonBodyLimit(app).Accepts<CommitRequest>("application/json")
            .Produces<CommittedUploads>(StatusCodes.Status202Accepted).Produces<CommitRefused>(StatusCodes.Status400BadRequest)
            .ProducesErrors(StatusCodes.Status403Forbidden, StatusCodes.Status413PayloadTooLarge, StatusCodes.Status415UnsupportedMediaType);
        // The URL itself is the credential (a random id that expires), as a presigned S3 URL is.
        api.MapPut("/{id:guid}/content", PutContentAsync).WithName("PutUploadContent").WithSummary("The upload URL of stores that cannot presign (the embedded folder store)")
            .DisableAntiforgery().AllowAnonymous()
            .Produces<UploadedContent>().ProducesErrors(StatusCodes.Status400BadRequest, StatusCodes.Status404NotFound, StatusCodes.Status409Conflict,
                StatusCodes.Status413PayloadTooLarge);
        return api;
    }

    public static async Task<IResult> CreateAsync(HttpRequest request, [FromServices] DirectUploads uploads, [FromServices] UploadOptions limits,
        [FromServices] PublicBaseUrlOptions publicUrl, [FromServices] IOptions<HttpJsonOptions> json, CancellationToken cancellationToken)
    {
        var (body, error) = await ReadJsonAsync<CreateRequest>(request, json.Value.SerializerOptions, cancellationToken);
        if (error is not null) return error;
        if (body!.Count is not null && body.Files is not null)
            return Bad("ambiguous_request", "give either count or files, not both");
        var files = body.Files is not null
            ? body.Files.Select(f => f is null ? null : new DirectUploads.FileRequest(f.Filename, f.ContentType, f.Size)).ToList()
            : body.Count is { } n && n >= 1 && n <= limits.MaxFilesPerRequest ? Enumerable.Repeat<DirectUploads.FileRequest?>(new DirectUploads.FileRequest(null, null, null), n).ToList()
            : null;
        if (files is null)
            return body.Count is null
                ? Bad("no_files", "give count (how many uploads) or files (a list of {filename, content_type, size})")
                : Bad("invalid_count", $"count must be between 1 and {limits.MaxFilesPerRequest}");
        if (files.Count == 0 || files.Count > limits.MaxFilesPerRequest)
            return Bad("invalid_count", $"files must list between 1 and {limits.MaxFilesPerRequest} uploads; it has {files.Count}");
        for (var i = 0; i < files.Count; i++)
        {
            var f = files[i];
            if (f is null) return Bad("invalid_file", $"files[{i}] is null");
            if (f.Size is < 0) return Bad("invalid_size", $"files[{i}].size must not be negative");
            if (f.Size == 0) return Bad("empty_file", $"files[{i}] ({f.Filename}) is empty");
            if (f.Size > limits.MaxFileBytes)
                return ApiErrors.Result(StatusCodes.Status413PayloadTooLarge, ImageIntake.FileTooLarge,
                    $"files[{i}] ({f.Filename}) is {f.Size:N0} bytes; the limit is {limits.MaxFileBytes:N0}");
            // Parsed as a multipart part's type is: a NUL or other bytes no header may hold made PostgreSQL refuse the row (500).
            if (f.ContentType is { Length: > 0 } given && MultipartUploads.MediaTypeOf(given) is null)
                return Bad("invalid_content_type", $"files[{i}].content_type must be a media type such as image/jpeg, at most {MultipartUploads.MaxContentTypeLength} characters");
            files[i] = f with { ContentType = MultipartUploads.MediaTypeOf(f.ContentType) };
        }
        var source = body.Source ?? "";
        if (SourceNames.Validate(source) is { } invalid) return invalid;
        if (SourceBindings.Resolve(request.HttpContext.User, source, out var bound) is { } refused) return refused;

        var created = await uploads.CreateAsync(files.Select(f => f!).ToList(), bound, cancellationToken);
        var baseUrl = publicUrl.Root(request);
        var items = created.Select(c => new UploadView(c.Upload.Id, "PUT",
            (c.PresignedUrl?.ToString() ?? $"{baseUrl}/v1/uploads/{c.Upload.Id}/content"), c.Upload.FileName, ClassificationView.Utc(c.Upload.ExpiresAt))).ToList();
        // On Api:PublicBaseUrl when set (a bare "/v1/uploads/commit" missed a proxy's path prefix); relative otherwise, so a
        // client keeps its own scheme and host (an absolute one built on the request said http:// behind a TLS proxy).
        return TypedResults.Json(new CreatedUploads(items, items[0].ExpiresAt, publicUrl.Link(request, "/v1/uploads/commit")), statusCode: StatusCodes.Status201Created);
    }

    public static async Task<IResult> CommitAsync(HttpRequest request, [FromServices] DirectUploads uploads, [FromServices] UploadOptions limits,
        [FromServices] IOptions<HttpJsonOptions> json, CancellationToken cancellationToken)
    {
        var (body, error) = await ReadJsonAsync<CommitRequest>(request, json.Value.SerializerOptions, cancellationToken);
        if (error is not null) return error;
        if (body!.Ids is not { Count: > 0 } ids) return Bad("no_ids", "give ids: the upload ids POST /v1/uploads returned");
        if (ids.Count > limits.MaxFilesPerRequest) return Bad("too_many_ids", $"{ids.Count} ids in one commit; the limit is {limits.MaxFilesPerRequest}");
        if (ids.Distinct().Count() != ids.Count) return Bad("duplicate_ids", "an id is listed more than once");
        if (body.DuplicateWindowSeconds is < 0 or > IngestionOptions.MaxDuplicateWindowSeconds)
            return Bad("invalid_duplicate_window", $"duplicate_window_seconds must be between 0 and {IngestionOptions.MaxDuplicateWindowSeconds}");
        var source = body.Source ?? "";
        if (SourceNames.Validate(source) is { } invalid) return invalid;
        // Without a source, each upload keeps the one it was created with (held to the key's binding there), so a key
        // bound to a prefix need not repeat it.
        var boundTo = SourceBindings.Allowed(request.HttpContext.User);
        string? bound = null;
        if (source.Length > 0 && SourceBindings.Resolve(request.HttpContext.User, source, out bound) is { } refused) return refused;

        var outcome = await uploads.CommitAsync(ids, bound, body.DuplicateWindowSeconds, cancellationToken, boundTo);
        if (outcome.TooLarge is { } tooLarge) return ApiErrors.Result(StatusCodes.Status413PayloadTooLarge, tooLarge.Error, tooLarge.Message);
        var items = outcome.Items;
        var accepted = items.Count(i => i.Status == DirectUploads.Accepted);
        if (accepted == 0)
        {
            // Nothing was accepted: answer with the first reason, and the per-id list (as a multipart upload does).
            var first = items[0];
            var message = items.Count == 1 ? first.Message : $"none of the {items.Count} uploads was accepted; see items";
            return TypedResults.Json(new CommitRefused(first.Error!, message!, items), statusCode: StatusCodes.Status400BadRequest);
        }
        return TypedResults.Json(new CommittedUploads(items, accepted, items.Count - accepted), statusCode: StatusCodes.Status202Accepted);
    }

    public static async Task<IResult> PutContentAsync(Guid id, HttpRequest request, [FromServices] DirectUploads uploads, [FromServices] UploadOptions limits, CancellationToken cancellationToken)
    {
        if (request.ContentLength > limits.MaxFileBytes) return TooLarge(limits);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > limits.MaxFileBytes) return TooLarge(limits);
        }
        if (buffer.Length == 0) return Bad("empty_file", "the request body is empty; PUT the image's bytes");
        var (ok, status, error, message) = await uploads.PutContentAsync(id, buffer.ToArray(), cancellationToken);
        return ok ? TypedResults.Json(new UploadedContent(id, buffer.Length)) : ApiErrors.Result(status, error!, message!);
    }

    private static IResult TooLarge(UploadOptions limits) =>
        ApiErrors.Result(StatusCodes.Status413PayloadTooLarge, ImageIntake.FileTooLarge, $"the file is over the limit of {limits.MaxFileBytes:N0} bytes");

    private static IResult Bad(string error, string message) => ApiErrors.Result(StatusCodes.Status400BadRequest, error, message);

    /// <summary>Reads a JSON body, answering a missing or malformed one with a 400 that says what is wrong.</summary>
    private static async Task<(T? Body, IResult? Error)> ReadJsonAsync<T>(HttpRequest request, JsonSerializerOptions options, CancellationToken cancellationToken) where T : class
    {
        if (!request.HasJsonContentType())
            return (null, ApiErrors.Result(StatusCodes.Status415UnsupportedMediaType, "expected_json", "send a JSON body with Content-Type: application/json"));
        try
        {
            var body = await JsonSerializer.DeserializeAsync<T>(request.Body, options, cancellationToken);
            return body is null ? (null, Bad("invalid_json", "the body is JSON null; send an object")) : (body, null);
        }
        catch (JsonException e)
        {
            var where = e.Path is { Length: > 1 } path ? $" at {path}" : "";
            return (null, Bad("invalid_json", $"the body is not valid JSON for this request{where}: {e.Message.Split('.')[0]}"));
        }
    }
}
