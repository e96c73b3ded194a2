using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.UnitTests.Api;

/// <summary>The multipart reader: files of the field read whole into arrays of their size, other fields as the form reader gave them.</summary>
public sealed class MultipartUploadsTests
{
    private static readonly UploadOptions Options = new();

    [Fact]
    public async Task ReadAsync_FilesAndFields_ReadsEveryFileOfTheFieldWhole()
    {
        // Over 64 KB, where ASP.NET's form reader went through a temporary file, and over the first pooled buffer.
        var frame = Bytes(300_000, seed: 1);
        var small = Bytes(10, seed: 2);
        using var content = new MultipartFormDataContent
        {
            { File(frame, "image/jpeg"), "image", "frame.jpg" },
            { new StringContent("line-3"), "source" },
            { File(Bytes(500, seed: 3), "image/png"), "thumbnail", "thumb.png" },
            { File(small, "image/png"), "image", "small.png" },
        };

        var (upload, error) = await MultipartUploads.ReadAsync(await RequestAsync(content), "image", Options, CancellationToken.None);

        Assert.Null(error);
        Assert.Equal(["frame.jpg", "small.png"], upload!.Files.Select(f => f.FileName));
        Assert.Equal([0, 1], upload.Files.Select(f => f.Index));
        Assert.Equal(frame, upload.Files[0].Content);
        Assert.Equal(small, upload.Files[1].Content);
        Assert.Equal([300_000L, 10L], upload.Files.Select(f => f.Length));
        Assert.Equal(["image/jpeg", "image/png"], upload.Files.Select(f => f.ContentType));
        Assert.Equal("line-3", upload.Form["source"].ToString());
    }

    [Fact]
    public async Task ReadAsync_ContentTypeWithLongParameters_KeepsTheMediaTypeOnly()
    {
        var withParameters = new MediaTypeHeaderValue("image/jpeg");
        withParameters.Parameters.Add(new NameValueHeaderValue("camera", new string('x', 300)));
        var overlong = new MediaTypeHeaderValue("image/" + new string('y', 200));
        using var content = new MultipartFormDataContent
        {
            { new ByteArrayContent(Bytes(10, seed: 7)) { Headers = { ContentType = withParameters } }, "image", "a.jpg" },
            { new ByteArrayContent(Bytes(10, seed: 8)) { Headers = { ContentType = overlong } }, "image", "b.jpg" },
        };

        var (upload, error) = await MultipartUploads.ReadAsync(await RequestAsync(content), "image", Options, CancellationToken.None);

        Assert.Null(error);
        // images.content_type is varchar(128): a longer value made the insert fail.
        Assert.Equal(["image/jpeg", null], upload!.Files.Select(f => f.ContentType));
    }

    [Fact]
    public async Task ReadAsync_FileOverTheLimit_KeepsItsLengthOnly()
    {
        using var content = new MultipartFormDataContent { { File(Bytes(5000, seed: 4), "image/jpeg"), "image", "big.jpg" } };

        var (upload, _) = await MultipartUploads.ReadAsync(await RequestAsync(content), "image", new UploadOptions { MaxFileBytes = 1000 }, CancellationToken.None);

        Assert.Equal(5000, upload!.Files[0].Length);
        Assert.Empty(upload.Files[0].Content);
    }

    [Fact]
    public async Task ReadAsync_FilesInAnotherField_AnswersNoFileNamingThatField()
    {
        using var content = new MultipartFormDataContent { { File(Bytes(100, seed: 5), "image/jpeg"), "photo", "a.jpg" } };

        var (_, error) = await MultipartUploads.ReadAsync(await RequestAsync(content), "image", Options, CancellationToken.None);

        var answer = Assert.IsType<JsonHttpResult<ApiError>>(error);
        Assert.Equal(400, answer.StatusCode);
        Assert.Equal("no_file", answer.Value!.Error);
        Assert.Contains("'photo'", answer.Value.Message);
    }

    [Fact]
    public async Task ReadAsync_MoreFilesThanAllowed_AnswersTooManyFiles()
    {
        using var content = new MultipartFormDataContent();
        for (var i = 0; i < 4; i++) content.Add(File(Bytes(10, seed: i), "image/png"), "image", $"{i}.png");

        var (_, error) = await MultipartUploads.ReadAsync(await RequestAsync(content), "image", new UploadOptions { MaxFilesPerRequest = 3 }, CancellationToken.None);

        // The files past the limit are counted, not kept.
        var answer = Assert.IsType<JsonHttpResult<ApiError>>(error).Value!;
        Assert.Equal("too_many_files", answer.Error);
        Assert.StartsWith("4 files in one request; the limit is 3", answer.Message);
        // The setting that limits it, and how to send more: the message named neither.
        Assert.Contains("Uploads__MaxFilesPerRequest", answer.Message);
        Assert.Contains("further requests", answer.Message);
    }

    [Fact]
    public async Task ReadAsync_TooManyFormValues_400NotTooLarge()
    {
        using var content = new MultipartFormDataContent();
        for (var i = 0; i < 1025; i++) content.Add(new StringContent("x"), $"field{i}");

        var (_, error) = await MultipartUploads.ReadAsync(await RequestAsync(content), "image", Options, CancellationToken.None);

        // A few kilobytes: it was answered "request body is over the limit of 268,435,456 bytes".
        var answer = Assert.IsType<JsonHttpResult<ApiError>>(error);
        Assert.Equal(400, answer.StatusCode);
        Assert.Equal("form_limit_exceeded", answer.Value!.Error);
        Assert.Contains("1024", answer.Value.Message);
    }

    [Fact]
    public async Task ReadAsync_SectionHeaderLineOverItsLimit_400Malformed()
    {
        var file = File(Bytes(10, seed: 9), "image/jpeg");
        file.Headers.Add("X-Camera", new string('x', 20_000));
        using var content = new MultipartFormDataContent { { file, "image", "a.jpg" } };

        var (_, error) = await MultipartUploads.ReadAsync(await RequestAsync(content), "image", Options, CancellationToken.None);

        var answer = Assert.IsType<JsonHttpResult<ApiError>>(error);
        Assert.Equal(400, answer.StatusCode);
        Assert.Equal("malformed_request", answer.Value!.Error);
    }

    [Fact]
    public async Task ReadAsync_BodyOverTheRequestLimit_413()
    {
        using var content = new MultipartFormDataContent { { File(Bytes(5000, seed: 10), "image/jpeg"), "image", "a.jpg" } };

        var (_, error) = await MultipartUploads.ReadAsync(await RequestAsync(content), "image", new UploadOptions { MaxRequestBytes = 2000 }, CancellationToken.None);

        var answer = Assert.IsType<JsonHttpResult<ApiError>>(error);
        Assert.Equal(413, answer.StatusCode);
        Assert.Equal("request_too_large", answer.Value!.Error);
    }

    [Fact]
    public async Task ReadAsync_CutOffBody_AnswersMalformedRequest()
    {
        using var content = new MultipartFormDataContent { { File(Bytes(1000, seed: 6), "image/jpeg"), "image", "a.jpg" } };
        var request = await RequestAsync(content);
        var whole = ((MemoryStream)request.Body).ToArray();
        request.Body = new MemoryStream(whole[..(whole.Length / 2)]);

        var (_, error) = await MultipartUploads.ReadAsync(request, "image", Options, CancellationToken.None);

        var answer = Assert.IsType<JsonHttpResult<ApiError>>(error);
        Assert.Equal(400, answer.StatusCode);
        Assert.Equal("malformed_request", answer.Value!.Error);
    }

    [Fact]
    public async Task ReadAsync_CutOffBodyOfAClientThatWentAway_ThrowsForTheAbortNotMalformedRequest()
    {
        using var content = new MultipartFormDataContent { { File(Bytes(1000, seed: 6), "image/jpeg"), "image", "a.jpg" } };
        var request = await RequestAsync(content);
        var whole = ((MemoryStream)request.Body).ToArray();
        request.Body = new MemoryStream(whole[..(whole.Length / 2)]);
        request.HttpContext.RequestAborted = new CancellationToken(canceled: true);

        // ClientAborts makes it a 499 that no one reads.
        await Assert.ThrowsAnyAsync<IOException>(() => MultipartUploads.ReadAsync(request, "image", Options, CancellationToken.None));
    }

    [Fact]
    public async Task ReadAsync_MultipartWithoutBoundary_AnswersMalformedRequest()
    {
        var request = new DefaultHttpContext().Request;
        request.ContentType = "multipart/form-data";
        request.Body = new MemoryStream([1, 2, 3]);

        var (_, error) = await MultipartUploads.ReadAsync(request, "image", Options, CancellationToken.None);

        Assert.Equal("malformed_request", Assert.IsType<JsonHttpResult<ApiError>>(error).Value!.Error);
    }

    [Theory]
    [InlineData(71)]
    [InlineData(5000)] // over MultipartReader's buffer: its constructor threw ArgumentOutOfRangeException, an empty 500
    public async Task ReadAsync_BoundaryLongerThanRfc2046Allows_AnswersMalformedRequest(int length)
    {
        var (_, error) = await MultipartUploads.ReadAsync(RawMultipart(new string('b', length)), "image", Options, CancellationToken.None);

        var answer = Assert.IsType<JsonHttpResult<ApiError>>(error);
        Assert.Equal(400, answer.StatusCode);
        Assert.Equal("malformed_request", answer.Value!.Error);
        Assert.Contains("70", answer.Value.Message);
    }

    [Fact]
    public async Task ReadAsync_BoundaryOf70Characters_Read()
    {
        var (upload, error) = await MultipartUploads.ReadAsync(RawMultipart(new string('b', 70)), "image", Options, CancellationToken.None);

        Assert.Null(error);
        Assert.Equal([3L], upload!.Files.Select(f => f.Length));
    }

    /// <summary>One three-byte file under <paramref name="boundary"/>, written by hand: HttpClient refuses boundaries over 70 characters.</summary>
    private static HttpRequest RawMultipart(string boundary)
    {
        var request = new DefaultHttpContext().Request;
        request.ContentType = $"multipart/form-data; boundary={boundary}";
        request.Body = new MemoryStream(System.Text.Encoding.ASCII.GetBytes(
            $"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\nabc\r\n--{boundary}--\r\n"));
        return request;
    }

    [Fact]
    public async Task ReadAsync_UrlEncodedForm_ReadsItsFieldsAndFindsNoFile()
    {
        var request = new DefaultHttpContext().Request;
        request.ContentType = "application/x-www-form-urlencoded";
        request.Body = new MemoryStream("source=line-3"u8.ToArray());

        var (upload, error) = await MultipartUploads.ReadAsync(request, "image", Options, CancellationToken.None, filesRequired: false);

        Assert.Null(error);
        Assert.Empty(upload!.Files);
        Assert.Equal("line-3", upload.Form["source"].ToString());
    }

    [Theory]
    [InlineData("")] // curl -d '': an empty body, typed url-encoded by curl, was a 400 no_file
    [InlineData("source=line-3")]
    public async Task ReadAsync_FilesRequiredAndAUrlEncodedForm_ExpectedMultipart(string body)
    {
        var request = new DefaultHttpContext().Request;
        request.ContentType = "application/x-www-form-urlencoded";
        request.ContentLength = body.Length;
        request.Body = new MemoryStream(System.Text.Encoding.ASCII.GetBytes(body));

        var (_, error) = await MultipartUploads.ReadAsync(request, "image", Options, CancellationToken.None);

        var answer = Assert.IsType<JsonHttpResult<ApiError>>(error);
        Assert.Equal("expected_multipart", answer.Value!.Error);
        Assert.Contains("multipart/form-data", answer.Value.Message);
    }

    [Fact]
    public async Task ReadAsync_AFieldGivenTwice_RepeatedFieldNamingIt()
    {
        using var content = new MultipartFormDataContent
        {
            { File(Bytes(10, seed: 9), "image/png"), "image", "a.png" },
            { new StringContent("line-1"), "source" },
            { new StringContent("line-2"), "source" },
        };

        var (_, error) = await MultipartUploads.ReadAsync(await RequestAsync(content), "image", Options, CancellationToken.None);

        // The values were joined ("line-1,line-2") and refused as an invalid source.
        var answer = Assert.IsType<JsonHttpResult<ApiError>>(error);
        Assert.Equal(400, answer.StatusCode);
        Assert.Equal("repeated_field", answer.Value!.Error);
        Assert.Contains("'source'", answer.Value.Message);
    }

    [Fact]
    public async Task ReadAsync_ARepeatableFieldGivenTwice_ReadsEveryValue()
    {
        using var content = new MultipartFormDataContent
        {
            { File(Bytes(10, seed: 10), "image/png"), "images", "a.png" },
            { File(Bytes(10, seed: 11), "image/png"), "images", "b.png" },
            { new StringContent("glass"), "labels" },
            { new StringContent("paper"), "labels" },
        };

        var (upload, error) = await MultipartUploads.ReadAsync(await RequestAsync(content), "images", Options, CancellationToken.None,
            filesRequired: false, repeatableFields: ["labels"]);

        Assert.Null(error);
        Assert.Equal(["glass", "paper"], upload!.Form["labels"].Select(l => l ?? ""));
    }

    [Theory]
    [InlineData(true, false)] // Content-Length: 0
    [InlineData(false, false)] // no Content-Length and not chunked (curl -X POST): the server finds no body
    [InlineData(true, true)] // an empty Content-Type header is no type either (it was a 400 expected_multipart)
    [InlineData(false, true)]
    public async Task ReadAsync_FilesOptionalAndNoBodyAtAll_ReadsARequestWithoutFiles(bool contentLengthZero, bool emptyContentType)
    {
        // README: a training job without files retrains on the base dataset and feedback; with no body it was a 400 expected_multipart.
        var request = WithoutBody(contentLengthZero);
        if (emptyContentType) request.Headers.ContentType = "";
        var (upload, error) = await MultipartUploads.ReadAsync(request, "images", Options, CancellationToken.None, filesRequired: false);

        Assert.Null(error);
        Assert.Empty(upload!.Files);
        Assert.Empty(upload.Form);
    }

    [Fact]
    public async Task ReadAsync_FilesRequiredAndNoBody_StillExpectedMultipart()
    {
        var (_, error) = await MultipartUploads.ReadAsync(WithoutBody(contentLengthZero: true), "image", Options, CancellationToken.None);

        Assert.Equal("expected_multipart", Assert.IsType<JsonHttpResult<ApiError>>(error).Value!.Error);
    }

    [Theory]
    [InlineData("application/json", "{}")]
    [InlineData(null, "images=1")] // a body without a type is not "no body"
    [InlineData("text/plain", "")] // nor is an empty one of another type
    public async Task ReadAsync_FilesOptionalAndABodyOfAnotherType_StillExpectedMultipart(string? contentType, string body)
    {
        var request = new DefaultHttpContext().Request;
        request.ContentType = contentType;
        request.ContentLength = body.Length;
        request.Body = new MemoryStream(System.Text.Encoding.ASCII.GetBytes(body));

        var (_, error) = await MultipartUploads.ReadAsync(request, "images", Options, CancellationToken.None, filesRequired: false);

        Assert.Equal("expected_multipart", Assert.IsType<JsonHttpResult<ApiError>>(error).Value!.Error);
    }

    private static HttpRequest WithoutBody(bool contentLengthZero)
    {
        var context = new DefaultHttpContext();
        if (contentLengthZero) context.Request.ContentLength = 0;
        else context.Features.Set<IHttpRequestBodyDetectionFeature>(new NoBody());
        return context.Request;
    }

    /// <summary>What Kestrel reports for an HTTP/1.1 request with neither Content-Length nor Transfer-Encoding.</summary>
    private sealed class NoBody : IHttpRequestBodyDetectionFeature
    {
        public bool CanHaveBody => false;
    }

    private static ByteArrayContent File(byte[] bytes, string contentType) => new(bytes) { Headers = { ContentType = new MediaTypeHeaderValue(contentType) } };

    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static async Task<HttpRequest> RequestAsync(MultipartFormDataContent content)
    {
        var request = new DefaultHttpContext().Request;
        request.ContentType = content.Headers.ContentType!.ToString();
        var body = new MemoryStream();
        await content.CopyToAsync(body);
        body.Position = 0;
        request.Body = body;
        return request;
    }
}
