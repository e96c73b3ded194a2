using Minio;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Storage;

/// <summary>The MinIO adapter against the real S3 server.</summary>
public sealed class MinioObjectStoreTests
{
    [IntegrationFact]
    public async Task PutGetDelete_RoundTripsBytesAndReportsMissingObjects()
    {
        var services = await TestServices.GetAsync();
        var client = new MinioClient().WithEndpoint(services.S3Endpoint).WithCredentials(services.S3AccessKey, services.S3SecretKey).Build();
        var store = new MinioObjectStore(client, $"wc-store-{Guid.NewGuid():N}"[..30]);
        var content = Enumerable.Range(0, 100_000).Select(i => (byte)i).ToArray();

        await store.EnsureReadyAsync(CancellationToken.None);
        await store.EnsureReadyAsync(CancellationToken.None); // idempotent
        await store.PutAsync("sha256/ab/abc", content, "image/jpeg", CancellationToken.None);
        await store.PutAsync("sha256/ab/abc", content, "image/jpeg", CancellationToken.None); // same key, one object
        await store.CheckAsync(CancellationToken.None);

        Assert.Equal(content, await store.GetAsync("sha256/ab/abc", CancellationToken.None));
        Assert.Null(await store.GetAsync("sha256/ab/missing", CancellationToken.None));
        await store.DeleteAsync("sha256/ab/abc", CancellationToken.None);
        Assert.Null(await store.GetAsync("sha256/ab/abc", CancellationToken.None));
    }
}
