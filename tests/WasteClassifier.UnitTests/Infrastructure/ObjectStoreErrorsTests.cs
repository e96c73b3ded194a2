using System.Net;
using Minio.Exceptions;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.UnitTests.Infrastructure;

/// <summary>Which object-store failures fail one image for good, and which fail its batch for a retry.</summary>
public sealed class ObjectStoreErrorsTests
{
    private static ObjectStoreResponseException Answer(HttpStatusCode status, string? code) =>
        new($"object store GET sha256/ab/abc answered {(int)status} {code}".TrimEnd(), status, code);

    /// <summary>
    /// What the Minio client 7 throws for an error answer with an XML body to its own requests (a DELETE's): the body's code,
    /// no status. Its Response is set internally, hence the reflection (MinioObjectStoreDeleteErrorsTests gets it from the client).
    /// </summary>
    private static UnexpectedMinioException MinioAnswer(string code)
    {
        var error = new UnexpectedMinioException(code);
        typeof(MinioException).GetProperty(nameof(MinioException.Response))!.SetValue(error, new ErrorResponse { Code = code });
        return error;
    }

    public static TheoryData<string, Exception> Permanent => new()
    {
        { "403_access_denied", Answer(HttpStatusCode.Forbidden, "AccessDenied") },
        { "400_invalid_argument", Answer(HttpStatusCode.BadRequest, "InvalidArgument") },
        { "400_key_too_long", Answer(HttpStatusCode.BadRequest, "KeyTooLongError") },
        { "404_other_than_no_such_key", Answer(HttpStatusCode.NotFound, "NoSuchVersion") },
        { "403_without_a_body", Answer(HttpStatusCode.Forbidden, null) },
        { "http_410", new HttpRequestException("gone", null, HttpStatusCode.Gone) },
        { "folder_store_invalid_key", new ArgumentException("invalid object key '../x'", "key") },
        { "folder_store_permission_denied", new UnauthorizedAccessException("Access to the path '/srv/data/objects/x' is denied.") },
        { "folder_store_path_too_long", new PathTooLongException() },
        { "object_over_its_bound", new ObjectTooLargeException("uploads/x", 10) },
        { "minio_403_access_denied", MinioAnswer("AccessDenied") },
        { "minio_invalid_object_name", new Minio.Exceptions.InvalidObjectNameException("x", "Object name cannot be greater than 1024 characters.") },
    };

    public static TheoryData<string, Exception> Transient => new()
    {
        { "500_internal_error", Answer(HttpStatusCode.InternalServerError, "InternalError") },
        { "503_slow_down", Answer(HttpStatusCode.ServiceUnavailable, "SlowDown") },
        { "502_from_a_proxy", new HttpRequestException("bad gateway", null, HttpStatusCode.BadGateway) },
        { "429", Answer(HttpStatusCode.TooManyRequests, null) },
        { "408", Answer(HttpStatusCode.RequestTimeout, null) },
        { "400_request_timeout", Answer(HttpStatusCode.BadRequest, "RequestTimeout") },
        { "403_clock_skewed", Answer(HttpStatusCode.Forbidden, "RequestTimeTooSkewed") },
        { "403_wrong_secret", Answer(HttpStatusCode.Forbidden, "SignatureDoesNotMatch") },
        { "403_unknown_access_key", Answer(HttpStatusCode.Forbidden, "InvalidAccessKeyId") },
        { "404_bucket_missing", Answer(HttpStatusCode.NotFound, "NoSuchBucket") },
        { "connection_refused", new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused") },
        { "timeout", new TimeoutException("object store GET sha256/ab/abc did not finish within 30 s") },
        { "cancelled", new OperationCanceledException() },
        { "task_cancelled", new TaskCanceledException() },
        { "disk_error", new IOException("Input/output error") },
        { "minio_503_slow_down", MinioAnswer("SlowDown") },
        { "minio_500_internal_error", MinioAnswer("InternalError") },
        { "minio_403_wrong_secret", new AuthorizationException("/images/uploads/abc", "images", "The request signature we calculated does not match", "access") },
        { "minio_404_bucket_missing", new BucketNotFoundException("images", "Not found.") },
        // On a key the service made, about the request or the setup: a store-wide fault gave up every staged object.
        { "minio_400_invalid_argument", MinioAnswer("InvalidArgument") },
        { "minio_400_key_too_long", MinioAnswer("KeyTooLongError") },
        // S3 names its refusals; a 403 without a body comes from a proxy or WAF in between.
        { "minio_403_without_a_body", new AccessDeniedException("Access denied on the resource: /images/uploads/abc") },
    };

    [Theory]
    [MemberData(nameof(Permanent))]
    public void IsPermanent_AnswerAboutTheObject_True(string answer, Exception error)
    {
        Assert.True(ObjectStoreErrors.IsPermanent(error), answer);
    }

    [Theory]
    [MemberData(nameof(Transient))]
    public void IsPermanent_AnswerARetryMayChange_False(string answer, Exception error)
    {
        Assert.False(ObjectStoreErrors.IsPermanent(error), answer);
    }

    [Fact]
    public void Describe_FileError_NamesItsKindButNotTheServersFolders()
    {
        Assert.Equal("UnauthorizedAccessException", ObjectStoreErrors.Describe(new UnauthorizedAccessException("Access to the path '/srv/data/objects/x' is denied.")));
        Assert.Equal("object store GET sha256/ab/abc answered 403 AccessDenied", ObjectStoreErrors.Describe(Answer(HttpStatusCode.Forbidden, "AccessDenied")));
    }

    [Fact]
    public void Describe_ForeignMessages_NamedByKindAndCodesOnly()
    {
        // What reaches a classification's error and the readiness probe: never a host, a credential or the server's text.
        var unreachable = new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused (minio.internal:9000)",
            new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.ConnectionRefused));
        var minio = new UnexpectedMinioException("MinIO API responded with message=The secret key sk-123 was not valid");
        var answered = MinioAnswer("AccessDenied");

        Assert.Equal("the object store is unreachable (HttpRequestException: ConnectionError, ConnectionRefused)", ObjectStoreErrors.Describe(unreachable));
        Assert.Equal("the object store failed (UnexpectedMinioException)", ObjectStoreErrors.Describe(minio));
        Assert.Equal("the object store answered AccessDenied", ObjectStoreErrors.Describe(answered));
        Assert.Equal("the object store did not answer in time", ObjectStoreErrors.Describe(new TimeoutException("store at 10.0.0.7 timed out")));
        Assert.Equal("the object store folder is missing", ObjectStoreErrors.Describe(new DirectoryNotFoundException("/srv/data/objects is missing")));
        Assert.Equal("the object store failed (InvalidOperationException)", ObjectStoreErrors.Describe(new InvalidOperationException("password=hunter2")));
    }
}
