namespace WasteClassifier.Infrastructure.Storage;

/// <summary>Where image bytes live between the API and the workers: MinIO/S3 when distributed, a folder when embedded.</summary>
public interface IObjectStore
{
    /// <summary>Creates the bucket when it is missing; called once at start.</summary>
    Task EnsureReadyAsync(CancellationToken cancellationToken);

    /// <summary>Stores bytes under <paramref name="key"/>; writing the same key twice leaves one object.</summary>
    Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken);

    /// <summary>Returns the object's bytes, or null when no object has that key.</summary>
    Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken);

    /// <summary>
    /// As <see cref="GetAsync(string, CancellationToken)"/>, but throws <see cref="ObjectTooLargeException"/> rather than
    /// read more than <paramref name="maxBytes"/>: for objects a client can rewrite (a direct upload's presigned PUT).
    /// </summary>
    Task<byte[]?> GetAsync(string key, long maxBytes, CancellationToken cancellationToken);

    Task DeleteAsync(string key, CancellationToken cancellationToken);

    /// <summary>A cheap round trip for health checks; throws when the store cannot be reached.</summary>
    Task CheckAsync(CancellationToken cancellationToken);

    /// <summary>
    /// A URL a client may PUT the object's bytes to directly until <paramref name="expiry"/> has passed, or null when
    /// this store cannot be reached by clients (then the API serves the PUT itself).
    /// </summary>
    Task<Uri?> PresignPutAsync(string key, TimeSpan expiry, CancellationToken cancellationToken) => Task.FromResult<Uri?>(null);

    /// <summary>The object's size in bytes without reading it, or null when no object has that key.</summary>
    async Task<long?> SizeAsync(string key, CancellationToken cancellationToken) => (await GetAsync(key, cancellationToken))?.LongLength;
}
