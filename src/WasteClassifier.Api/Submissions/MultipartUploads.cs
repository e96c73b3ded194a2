using System.Buffers;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace WasteClassifier.Api.Submissions;

/// <summary>Reads the image files of a multipart request, answering request-level problems (not multipart, too big, no file) itself.</summary>
public static class MultipartUploads
{
    public sealed record Upload(IReadOnlyList<UploadedImage> Files, IFormCollection Form);

    /// <param name="filesRequired">
    /// False: the request may hold no file, unless it sent files in another field or one of <paramref name="fieldsNeedingFiles"/>
    /// (labels, say): a file in the wrong field was otherwise accepted as a request without files.
    /// </param>
    /// <param name="repeatableFields">The fields that may be given more than once (a label per file); any other given twice is refused.</param>
    public static async Task<(Upload? Upload, IResult? Error)> ReadAsync(HttpRequest request, string field, UploadOptions options, CancellationToken cancellationToken,
        bool filesRequired = true, IReadOnlyList<string>? fieldsNeedingFiles = null, IReadOnlyList<string>? repeatableFields = null)
    {
        // Where files are optional, a request with no body at all (curl -X POST) is one without files: it was a 400
        // expected_multipart. A body of another type still is. An empty Content-Type header names no type either.
        if (!filesRequired && string.IsNullOrEmpty(request.ContentType) && HasNoBody(request))
            return (new Upload([], FormCollection.Empty), null);
        if (!request.HasFormContentType)
            return (null, ExpectedMultipart(field));
        try
        {
            var boundary = Boundary(request.ContentType);
            // A url-encoded form cannot hold a file: where one is required, it is not a form without a file (no_file) but the
            // wrong kind of body, as curl -d '' sends (an empty body, typed url-encoded by curl).
            if (boundary is null && filesRequired) return (null, ExpectedMultipart(field));
            var (files, fileCount, fileFields, form) = boundary is null
                ? ([], 0, [], await request.ReadFormAsync(cancellationToken)) // url-encoded: fields only
                : await ReadSectionsAsync(request.Body, boundary, field, options, cancellationToken);
            // Each value of a field given twice was joined with a comma ("line-1,line-2") and refused or used as one value.
            var repeated = form.FirstOrDefault(f => f.Value.Count > 1 && repeatableFields?.Contains(f.Key, StringComparer.OrdinalIgnoreCase) != true);
            if (repeated.Key is not null)
                return (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "repeated_field",
                    $"the form field '{repeated.Key}' was given {repeated.Value.Count} times; give it once"));
            var needingFiles = fieldsNeedingFiles?.FirstOrDefault(form.ContainsKey);
            if (fileCount == 0 && (filesRequired || fileFields.Count > 0 || needingFiles is not null))
            {
                var other = fileFields.Count > 0 ? $" (files were sent in '{string.Join("', '", fileFields.Distinct())}')"
                    : needingFiles is not null ? $" (the field '{needingFiles}' was sent, which is for files in '{field}')" : "";
                return (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "no_file", $"no file in the form field '{field}'{other}"));
            }
            if (fileCount > options.MaxFilesPerRequest)
                return (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "too_many_files",
                    // Named as it is set, so that the caller learns what limits it and how to send more.
                    $"{fileCount} files in one request; the limit is {options.MaxFilesPerRequest} (Uploads__MaxFilesPerRequest): send the rest in further requests"));
            return (new Upload(files, form), null);
        }
        // Not when the client went away mid-body: nobody reads the 400, and the request is a 499 (ClientAborts), not malformed.
        catch (Exception e) when (e is InvalidDataException or BadHttpRequestException or IOException && !request.HttpContext.RequestAborted.IsCancellationRequested)
        {
            // Only the body's size is a 413: the other limits (form values, header lines) were once answered as one too.
            if (e is BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } || IsBodyLengthLimit(e))
                return (null, ApiErrors.Result(StatusCodes.Status413PayloadTooLarge, "request_too_large", $"the request body is over the limit of {options.MaxRequestBytes:N0} bytes"));
            // Slower than Uploads__MinBodyBytesPerSecond: a slow link, not a malformed request. A 400 here stopped a whole
            // wastectl ingest run; a 408 is retried.
            if (e is BadHttpRequestException { StatusCode: StatusCodes.Status408RequestTimeout })
                return (null, ApiErrors.Result(StatusCodes.Status408RequestTimeout, "request_timeout",
                    "the request body arrived slower than the minimum rate (Uploads__MinBodyBytesPerSecond); send it again"));
            if (e is FormLimitException)
                return (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "form_limit_exceeded", e.Message));
            return (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "malformed_request", $"the multipart body could not be read: {e.Message}"));
        }
    }

    private static IResult ExpectedMultipart(string field) =>
        ApiErrors.Result(StatusCodes.Status400BadRequest, "expected_multipart", $"send the image as multipart/form-data in the field '{field}'");

    /// <summary>Content-Length: 0, or none and not chunked (the server's body detection: HTTP/2's END_STREAM too).</summary>
    private static bool HasNoBody(HttpRequest request) =>
        request.ContentLength == 0 || request.HttpContext.Features.Get<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: false };

    /// <summary>MultipartReader's <see cref="MultipartReader.BodyLengthLimit"/> has no exception type of its own, only this message.</summary>
    private static bool IsBodyLengthLimit(Exception e) =>
        e is InvalidDataException && e.Message.StartsWith("Multipart body length limit", StringComparison.Ordinal);

    /// <summary>A form limit of this reader's own (value count, value length): the request is refused, but it is not too large.</summary>
    private sealed class FormLimitException(string message) : IOException(message);

    /// <summary>RFC 2046 (5.1.1): a boundary is 1 to 70 characters.</summary>
    public const int MaxBoundaryLength = 70;

    private static string? Boundary(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var type) && type.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)
            ? HeaderUtilities.RemoveQuotes(type.Boundary).Value switch
            {
                { Length: 0 } or null => throw new InvalidDataException("the multipart content type has no boundary"),
                // Over MultipartReader's buffer (about 4 KB) its constructor throws ArgumentOutOfRangeException, which was an empty 500.
                { Length: > MaxBoundaryLength } => throw new InvalidDataException($"the multipart boundary is longer than {MaxBoundaryLength} characters (RFC 2046)"),
                var boundary => boundary,
            }
            : null;

    /// <summary>
    /// Reads the body section by section, each file of <paramref name="field"/> straight into an array of its size. ASP.NET's
    /// form reader would first copy every file over 64 KB to a temporary file and back (a camera frame is 0.2–1 MB): that
    /// was 40 % of the API's CPU under camera load.
    /// </summary>
    /// <returns>The files read (at most <see cref="UploadOptions.MaxFilesPerRequest"/>) and how many the field had.</returns>
    private static async Task<(List<UploadedImage> Files, int FileCount, List<string> OtherFileFields, IFormCollection Form)> ReadSectionsAsync(Stream body, string boundary,
        string field, UploadOptions options, CancellationToken cancellationToken)
    {
        var limits = new FormOptions();
        Configure(limits, options);
        var reader = new MultipartReader(boundary, body) { BodyLengthLimit = limits.MultipartBodyLengthLimit };
        var files = new List<UploadedImage>();
        var fileCount = 0;
        var otherFileFields = new List<string>();
        var fields = new KeyValueAccumulator();
        var sections = 0;
        while (await reader.ReadNextSectionAsync(cancellationToken) is { } section)
        {
            // The form reader's limits.
            if (++sections > limits.ValueCountLimit) throw new FormLimitException($"more than {limits.ValueCountLimit} form fields and files in one request");
            if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition))
                throw new InvalidDataException("Form section has no Content-Disposition header, or one that cannot be read.");
            var name = HeaderUtilities.RemoveQuotes(disposition.Name).ToString();
            if (disposition.IsFileDisposition())
            {
                // Past the file limit the request is refused: count the rest without holding them in memory.
                if (name.Equals(field, StringComparison.OrdinalIgnoreCase) && ++fileCount > options.MaxFilesPerRequest)
                {
                    await section.Body.DrainAsync(cancellationToken);
                    continue;
                }
                if (!name.Equals(field, StringComparison.OrdinalIgnoreCase))
                {
                    otherFileFields.Add(name);
                    await section.Body.DrainAsync(cancellationToken);
                    continue;
                }
                var fileName = HeaderUtilities.RemoveQuotes(disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).ToString();
                var (content, length) = await ReadFileAsync(section.Body, options.MaxFileBytes, cancellationToken);
                files.Add(new UploadedImage(files.Count, fileName, MediaTypeOf(section.ContentType), length, content));
            }
            else if (disposition.IsFormDisposition())
            {
                var value = await new FormMultipartSection(section, disposition).GetValueAsync(cancellationToken);
                if (value.Length > limits.ValueLengthLimit) throw new FormLimitException($"the form field '{name}' is longer than {limits.ValueLengthLimit:N0} characters");
                fields.Append(name, value);
            }
            else
            {
                throw new InvalidDataException($"Unrecognized Content-Disposition for this section: {section.ContentDisposition}");
            }
        }
        return (files, fileCount, otherFileFields, new FormCollection(fields.GetResults()));
    }

    /// <summary>
    /// The part's media type without parameters, or null when it has none that fits <c>images.content_type</c>: a longer
    /// header made the insert fail on PostgreSQL (22001), for every retry of the request.
    /// </summary>
    public static string? MediaTypeOf(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var type) && type.MediaType.Value is { Length: > 0 and <= MaxContentTypeLength } mediaType ? mediaType : null;

    /// <summary>The length of <c>images.content_type</c>.</summary>
    public const int MaxContentTypeLength = 128;

    /// <summary>
    /// The file's bytes and length. Over <paramref name="maxBytes"/> only the length is kept (the intake refuses the file
    /// by its size); the rest is read and dropped. Read into pooled buffers, then copied once into an array of the size.
    /// </summary>
    private static async Task<(byte[] Content, long Length)> ReadFileAsync(Stream body, long maxBytes, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        var used = 0;
        long length = 0;
        try
        {
            while (true)
            {
                if (used == buffer.Length && length <= maxBytes)
                {
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(2L * buffer.Length, Array.MaxLength));
                    buffer.AsSpan(0, used).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                // Past the limit the buffer is only scratch space for reading.
                var target = length <= maxBytes ? buffer.AsMemory(used) : buffer.AsMemory();
                var read = await body.ReadAsync(target, cancellationToken);
                if (read == 0) break;
                length += read;
                if (length <= maxBytes) used += read;
            }
            return (length > 0 && length <= maxBytes ? buffer.AsSpan(0, used).ToArray() : [], length);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Request-size limits for multipart bodies, from <see cref="UploadOptions"/>.</summary>
    public static void Configure(FormOptions form, UploadOptions options)
    {
        form.MultipartBodyLengthLimit = options.MaxRequestBytes;
        form.ValueCountLimit = Math.Max(1024, options.MaxFilesPerRequest * 4);
    }
}
