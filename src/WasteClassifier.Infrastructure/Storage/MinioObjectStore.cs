using Minio;
using Minio.DataModel.Args;
using Minio.Exceptions;

namespace WasteClassifier.Infrastructure.Storage;

/// <summary>MinIO or any S3-compatible server, through the Minio client. Uses no object listing (s3rver's is incompatible).</summary>
public sealed class MinioObjectStore(IMinioClient client, string bucket) : IObjectStore
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

    public async Task CheckAsync(CancellationToken cancellationToken)
    {
        if (!await client.BucketExistsAsync(new BucketExistsArgs().WithBucket(bucket), cancellationToken))
            throw new InvalidOperationException($"bucket {bucket} does not exist");
    }
}
