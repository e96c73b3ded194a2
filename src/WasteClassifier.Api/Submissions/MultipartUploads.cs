using Microsoft.AspNetCore.Http.Features;

namespace WasteClassifier.Api.Submissions;

/// <summary>Reads the image files of a multipart request, answering request-level problems (not multipart, too big, no file) itself.</summary>
public static class MultipartUploads
{
    public sealed record Upload(IReadOnlyList<UploadedImage> Files, IFormCollection Form);

    public static async Task<(Upload? Upload, IResult? Error)> ReadAsync(HttpRequest request, string field, UploadOptions options, CancellationToken cancellationToken, bool filesRequired = true)
    {
        if (!request.HasFormContentType)
            return (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "expected_multipart", $"send the image as multipart/form-data in the field '{field}'"));
        IFormCollection form;
        try
        {
            form = await request.ReadFormAsync(cancellationToken);
        }
        catch (Exception e) when (e is InvalidDataException or BadHttpRequestException or IOException)
        {
            var tooLarge = e is BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } || e.Message.Contains("limit", StringComparison.OrdinalIgnoreCase);
            return tooLarge
                ? (null, ApiErrors.Result(StatusCodes.Status413PayloadTooLarge, "request_too_large", $"the request body is over the limit of {options.MaxRequestBytes:N0} bytes"))
                : (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "malformed_request", $"the multipart body could not be read: {e.Message}"));
        }

        var files = form.Files.GetFiles(field);
        if (files.Count == 0 && filesRequired)
        {
            var other = form.Files.Count > 0 ? $" (files were sent in '{string.Join("', '", form.Files.Select(f => f.Name).Distinct())}')" : "";
            return (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "no_file", $"no file in the form field '{field}'{other}"));
        }
        if (files.Count > options.MaxFilesPerRequest)
            return (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "too_many_files", $"{files.Count} files in one request; the limit is {options.MaxFilesPerRequest}"));

        var uploads = new List<UploadedImage>(files.Count);
        for (var i = 0; i < files.Count; i++)
        {
            var file = files[i];
            var content = Array.Empty<byte>();
            if (file.Length > 0 && file.Length <= options.MaxFileBytes)
            {
                content = new byte[file.Length];
                await using var stream = file.OpenReadStream();
                await stream.ReadExactlyAsync(content, cancellationToken);
            }
            uploads.Add(new UploadedImage(i, file.FileName, file.ContentType, file.Length, content));
        }
        return (new Upload(uploads, form), null);
    }

    /// <summary>Request-size limits for multipart bodies, from <see cref="UploadOptions"/>.</summary>
    public static void Configure(FormOptions form, UploadOptions options)
    {
        form.MultipartBodyLengthLimit = options.MaxRequestBytes;
        form.ValueCountLimit = Math.Max(1024, options.MaxFilesPerRequest * 4);
    }
}
