using Minio;
using Minio.DataModel.Args;
using Minio.Exceptions;

namespace WasteClassifier.Infrastructure.Storage;

/// <summary>MinIO or any S3-compatible server, through the Minio client. Uses no object listing (s3rver's is incompatible).</summary>
/// <param name="presigner">Signs URLs for clients; built with the endpoint clients reach (may differ from the service's own).</param>
public sealed class MinioObjectStore(IMinioClient client, string bucket, IMinioClient? presigner = null) : IObjectStore
{
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

    public async Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken)
    {
        using var stream = new MemoryStream(content.ToArray(), writable: false);
        await client.PutObjectAsync(new PutObjectArgs()
            .WithBucket(bucket)
            .WithObject(key)
            .WithStreamData(stream)
            .WithObjectSize(stream.Length)
            .WithContentType(contentType), cancellationToken);
    }

    public async Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        try
        {
            await client.GetObjectAsync(new GetObjectArgs()
                .WithBucket(bucket)
                .WithObject(key)
                .WithCallbackStream((stream, ct) => stream.CopyToAsync(buffer, ct)), cancellationToken);
        }
        catch (ObjectNotFoundException)
        {
            return null;
        }
        return buffer.ToArray();
    }

    public Task DeleteAsync(string key, CancellationToken cancellationToken) =>
        client.RemoveObjectAsync(new RemoveObjectArgs().WithBucket(bucket).WithObject(key), cancellationToken);

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

    public async Task CheckAsync(CancellationToken cancellationToken)
    {
        if (!await client.BucketExistsAsync(new BucketExistsArgs().WithBucket(bucket), cancellationToken))
            throw new InvalidOperationException($"bucket {bucket} does not exist");
    }
}
