using System.Net;
using System.Net.Http.Headers;
using System.Xml.Linq;
using Minio;
using Minio.DataModel.Args;
using Minio.Exceptions;

namespace WasteClassifier.Infrastructure.Storage;

/// <summary>MinIO or any S3-compatible server, through the Minio client. Uses no object listing (s3rver's is incompatible).</summary>
/// <param name="presigner">Signs URLs for clients; built with the endpoint clients reach (may differ from the service's own).</param>
/// <param name="http">Sends the image PUTs and GETs itself, to URLs the client signs locally: one request each. The Minio client's
/// own PutObject adds a HEAD, and its GetObject a HEAD and a bucket check, which on the benchmark tripled the object store's
/// requests per image.</param>
public sealed class MinioObjectStore(IMinioClient client, string bucket, HttpClient http, IMinioClient? presigner = null) : IObjectStore
{
    // Signed for the one request made right after signing; long enough for clock skew and a slow upload.
    private const int RequestUrlExpirySeconds = 15 * 60;

    public async Task EnsureReadyAsync(CancellationToken cancellationToken)
    {
        if (!await client.BucketExistsAsync(new BucketExistsArgs().WithBucket(bucket), cancellationToken))
        {
            try
            {
                await client.MakeBucketAsync(new MakeBucketArgs().WithBucket(bucket), cancellationToken);
            }
            catch (MinioException)
            {
                // Another process may have created it first; anything else is a real failure.
                if (!await client.BucketExistsAsync(new BucketExistsArgs().WithBucket(bucket), cancellationToken)) throw;
            }
        }
    }

    public Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken) =>
        WithDeadlineAsync("PUT", key, async deadline =>
        {
            var url = await client.PresignedPutObjectAsync(new PresignedPutObjectArgs().WithBucket(bucket).WithObject(key).WithExpiry(RequestUrlExpirySeconds));
            using var body = new ReadOnlyMemoryContent(content);
            body.Headers.ContentType = MediaTypeHeaderValue.TryParse(contentType, out var type) ? type : new MediaTypeHeaderValue("application/octet-stream");
            using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Put, url) { Content = body }, deadline);
            await EnsureSuccessAsync(response, "PUT", key, deadline);
            return true;
        }, cancellationToken);

    public Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken) => GetAsync(key, maxBytes: null, cancellationToken);

    public Task<byte[]?> GetAsync(string key, long maxBytes, CancellationToken cancellationToken) => GetAsync(key, (long?)maxBytes, cancellationToken);

    private Task<byte[]?> GetAsync(string key, long? maxBytes, CancellationToken cancellationToken) =>
        WithDeadlineAsync("GET", key, async deadline =>
        {
            var url = await client.PresignedGetObjectAsync(new PresignedGetObjectArgs().WithBucket(bucket).WithObject(key).WithExpiry(RequestUrlExpirySeconds));
            using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Get, url), deadline);
            if (response.StatusCode == HttpStatusCode.NotFound && await ErrorCodeAsync(response, deadline) == "NoSuchKey") return null;
            await EnsureSuccessAsync(response, "GET", key, deadline);
            if (maxBytes is not { } max) return await response.Content.ReadAsByteArrayAsync(deadline);
            // The body is only streamed (ResponseHeadersRead): an object over the bound is refused on its Content-Length.
            await using var body = await response.Content.ReadAsStreamAsync(deadline);
            return await BoundedReads.ReadAsync(body, response.Content.Headers.ContentLength, max, key, deadline);
        }, cancellationToken);

    /// <summary>
    /// Runs one request, its body included, within the client's timeout. HttpClient.Timeout covers a request only until
    /// its headers arrive (ResponseHeadersRead): a server that sent them and then stalled held the read, and with it a
    /// worker's whole batch, for ever.
    /// </summary>
    private async Task<T> WithDeadlineAsync<T>(string method, string key, Func<CancellationToken, Task<T>> request, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(http.Timeout);
        try
        {
            return await request(deadline.Token);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"object store {method} {key} did not finish within {http.Timeout.TotalSeconds:F0} s", e);
        }
    }

    // Within the same deadline as a GET or PUT: a store that hangs fails the delete with a TimeoutException.
    public Task DeleteAsync(string key, CancellationToken cancellationToken) =>
        WithDeadlineAsync("DELETE", key, async deadline =>
        {
            await client.RemoveObjectAsync(new RemoveObjectArgs().WithBucket(bucket).WithObject(key), deadline);
            return true;
        }, cancellationToken);

    public async Task<long?> SizeAsync(string key, CancellationToken cancellationToken)
    {
        try
        {
            var stat = await client.StatObjectAsync(new StatObjectArgs().WithBucket(bucket).WithObject(key), cancellationToken);
            return stat.Size;
        }
        catch (ObjectNotFoundException)
        {
            return null;
        }
    }

    public async Task<Uri?> PresignPutAsync(string key, TimeSpan expiry, CancellationToken cancellationToken)
    {
        // Signing is local (no round trip) because the client is built with a fixed region.
        var url = await (presigner ?? client).PresignedPutObjectAsync(new PresignedPutObjectArgs()
            .WithBucket(bucket)
            .WithObject(key)
            .WithExpiry((int)Math.Ceiling(expiry.TotalSeconds)));
        return new Uri(url);
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using var _ = request;
        try
        {
            return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"object store {request.Method} timed out after {http.Timeout.TotalSeconds:F0} s", e);
        }
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, string method, string key, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode) return;
        var code = await ErrorCodeAsync(response, cancellationToken);
        throw new ObjectStoreResponseException($"object store {method} {key} answered {(int)response.StatusCode} {code}".TrimEnd(), response.StatusCode, code);
    }

    /// <summary>The S3 error code (e.g. NoSuchKey, NoSuchBucket, AccessDenied) from an error response's XML body.</summary>
    private static async Task<string?> ErrorCodeAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            // Only a code: it is passed on to clients (ObjectStoreErrors.Describe), the rest of the body is the server's text.
            var code = body.Length == 0 ? null : XDocument.Parse(body).Root?.Element("Code")?.Value;
            return Hosting.ExceptionReasons.IsCode(code) ? code : null;
        }
        catch (System.Xml.XmlException)
        {
            return null;
        }
    }

    public async Task CheckAsync(CancellationToken cancellationToken)
    {
        if (!await client.BucketExistsAsync(new BucketExistsArgs().WithBucket(bucket), cancellationToken))
            throw new BucketMissingException(bucket);
    }
}
