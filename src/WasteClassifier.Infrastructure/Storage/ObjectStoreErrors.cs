using System.Collections.Frozen;
using System.Net;
using Minio.Exceptions;
using WasteClassifier.Infrastructure.Hosting;

namespace WasteClassifier.Infrastructure.Storage;

/// <summary>
/// An S3 server's error answer: still an <see cref="HttpRequestException"/> with its status, and the S3 error code of its
/// body (e.g. AccessDenied, NoSuchBucket), which tells an answer about the object from one about the request or the bucket.
/// </summary>
public sealed class ObjectStoreResponseException(string message, HttpStatusCode statusCode, string? errorCode)
    : HttpRequestException(message, null, statusCode)
{
    public string? ErrorCode { get; } = errorCode;
}

/// <summary>Tells a read that will fail again for the same object from one that a retry may get through.</summary>
public static class ObjectStoreErrors
{
    // 4xx answers about the request, the credentials, the clock or the bucket rather than the object: one worker with a
    // wrong key, bucket or clock would otherwise fail every image it takes, at once, while the other workers could read them.
    private static readonly FrozenSet<string> NotAboutTheObject = FrozenSet.Create(StringComparer.Ordinal,
        "InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestTimeTooSkewed", "ExpiredToken", "NoSuchBucket", "RequestTimeout", "SlowDown",
        "AccountProblem", "AllAccessDisabled");

    /// <summary>
    /// Whether the store's answer will not change by asking again: a 4xx about the object (e.g. 403 AccessDenied, a 400 for
    /// a key it refuses; from the Minio client, an S3 AccessDenied), a key the client or the folder store cannot use, or a
    /// file this process may not read. Timeouts, 408, 429, 5xx (503 SlowDown included), connection failures and
    /// cancellation are not: they may pass on a retry.
    /// </summary>
    public static bool IsPermanent(Exception e) => e switch
    {
        ObjectStoreResponseException { ErrorCode: { } code } when NotAboutTheObject.Contains(code) => false,
        HttpRequestException { StatusCode: { } status } => (int)status is >= 400 and < 500 and not 408 and not 429,
        // The Minio client's own calls (a DELETE) throw the body's S3 code without the status. Only AccessDenied is about the
        // object: on a key the service made, InvalidArgument or KeyTooLongError is about the request or the setup, and a 403
        // without a body (AccessDeniedException) comes from a proxy or WAF, as S3 names its refusals. Store-wide, such a fault
        // taken as permanent had housekeeping give up every staged object after about 20 hours instead of waiting for its fix.
        MinioException { Response.Code: "AccessDenied" } => true,
        InvalidObjectNameException or ArgumentException or UnauthorizedAccessException or PathTooLongException or ObjectTooLargeException => true,
        _ => false,
    };

    /// <summary>
    /// The store's answer in a sentence a client (a classification's error, a health probe) may read. Only messages this
    /// service wrote itself from its own keys and the S3 error code are passed on; anything else is named by its kind and
    /// codes (<see cref="ExceptionReasons"/>): a file error's message names the server's folders, a connection error the
    /// store's host, the Minio client's exceptions the server's response text.
    /// </summary>
    public static string Describe(Exception e) => e switch
    {
        ObjectStoreResponseException or ObjectTooLargeException => e.Message,
        DirectoryNotFoundException => "the object store folder is missing",
        IOException or UnauthorizedAccessException => e.GetType().Name,
        TimeoutException => "the object store did not answer in time",
        HttpRequestException { StatusCode: { } status } => $"the object store answered {(int)status}",
        HttpRequestException => $"the object store is unreachable ({ExceptionReasons.Of(e)})",
        MinioException { Response.Code: { } code } when ExceptionReasons.IsCode(code) => $"the object store answered {code}",
        BucketMissingException => e.Message,
        InvalidObjectNameException or ArgumentException => "the object key is not valid for the store",
        _ => $"the object store failed ({ExceptionReasons.Of(e)})",
    };
}

/// <summary>
/// The folder store could not write an object (disk full, read-only volume, no permission): the store is unavailable, as an
/// unreachable S3 server is. An <see cref="IOException"/> still, for callers that catch those.
/// </summary>
public sealed class ObjectStoreWriteException(string message, Exception inner) : IOException(message, inner);

/// <summary>
/// The object store could not be read (the folder store's disk failing or a file this process may not open; a response
/// stream cut off): unavailable to the API, which answers 503 with Retry-After, as when it cannot write. An
/// <see cref="IOException"/> still, for callers that catch those.
/// </summary>
public sealed class ObjectStoreReadException(string message, Exception inner) : IOException(message, inner);

/// <summary>The configured bucket does not exist (an S3 store's readiness). Its message names the bucket, which is not a secret.</summary>
public sealed class BucketMissingException(string bucket) : InvalidOperationException($"the object store's bucket {bucket} does not exist");
