using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Storage;

/// <summary>The MinIO adapter, wired as the services wire it, against the real S3 server.</summary>
public sealed class MinioObjectStoreTests
{
    [IntegrationFact]
    public async Task PutGetDelete_RoundTripsBytesAndReportsMissingObjects()
    {
        var store = await CreateStoreAsync($"wc-store-{Guid.NewGuid():N}"[..30]);
        var content = Enumerable.Range(0, 100_000).Select(i => (byte)i).ToArray();

        await store.EnsureReadyAsync(CancellationToken.None);
        await store.EnsureReadyAsync(CancellationToken.None); // idempotent
        await store.PutAsync("sha256/ab/abc", content, "image/jpeg", CancellationToken.None);
        await store.PutAsync("sha256/ab/abc", content, "image/jpeg", CancellationToken.None); // same key, one object
        await store.PutAsync("sha256/ab/empty", ReadOnlyMemory<byte>.Empty, "not a content type", CancellationToken.None);
        await store.CheckAsync(CancellationToken.None);

        Assert.Equal(content, await store.GetAsync("sha256/ab/abc", CancellationToken.None));
        Assert.Equal(100_000, await store.SizeAsync("sha256/ab/abc", CancellationToken.None));
        Assert.Empty((await store.GetAsync("sha256/ab/empty", CancellationToken.None))!);
        Assert.Null(await store.GetAsync("sha256/ab/missing", CancellationToken.None));
        await store.DeleteAsync("sha256/ab/abc", CancellationToken.None);
        Assert.Null(await store.GetAsync("sha256/ab/abc", CancellationToken.None));
    }

    [IntegrationFact]
    public async Task GetBounded_ObjectOverTheBound_RefusedOnItsLength()
    {
        var store = await CreateStoreAsync($"wc-bound-{Guid.NewGuid():N}"[..30]);
        await store.EnsureReadyAsync(CancellationToken.None);
        var content = Enumerable.Range(0, 100_000).Select(i => (byte)i).ToArray();
        await store.PutAsync("uploads/abc", content, "image/jpeg", CancellationToken.None);

        Assert.Equal(content, await store.GetAsync("uploads/abc", 100_000, CancellationToken.None));
        await Assert.ThrowsAsync<ObjectTooLargeException>(() => store.GetAsync("uploads/abc", 99_999, CancellationToken.None));
        Assert.Null(await store.GetAsync("uploads/missing", 100_000, CancellationToken.None));
    }

    [IntegrationFact]
    public async Task Get_BucketMissing_ThrowsInsteadOfReportingAMissingObject()
    {
        var store = await CreateStoreAsync($"wc-none-{Guid.NewGuid():N}"[..30]);

        var error = await Assert.ThrowsAsync<ObjectStoreResponseException>(() => store.GetAsync("sha256/ab/abc", CancellationToken.None));
        Assert.Equal((HttpStatusCode.NotFound, "NoSuchBucket"), (error.StatusCode, error.ErrorCode));
        Assert.Contains("NoSuchBucket", error.Message);
        // About the bucket, not the object: a worker pointed at the wrong bucket retries rather than failing every image.
        Assert.False(ObjectStoreErrors.IsPermanent(error));
    }

    [IntegrationFact]
    public async Task Get_KeyTheStoreCannotName_FailsForGood()
    {
        var store = await CreateStoreAsync($"wc-name-{Guid.NewGuid():N}"[..30]);
        await store.EnsureReadyAsync(CancellationToken.None);

        // S3 keys hold at most 1,024 bytes.
        var error = await Assert.ThrowsAnyAsync<Exception>(() => store.GetAsync("sha256/ab/" + new string('a', 1100), CancellationToken.None));

        Assert.True(ObjectStoreErrors.IsPermanent(error), error.ToString());
    }

    [IntegrationFact]
    public async Task Get_UnknownAccessKey_Answered403ThatIsNotAboutTheObject()
    {
        var bucket = $"wc-auth-{Guid.NewGuid():N}"[..30];
        var store = await CreateStoreAsync(bucket);
        await store.EnsureReadyAsync(CancellationToken.None);
        await store.PutAsync("sha256/ab/abc", new byte[] { 1, 2, 3 }, "image/jpeg", CancellationToken.None);
        // s3rver checks the access key, not a V4 signature: an unknown key stands for any credential error.
        var misconfigured = await CreateStoreAsync(bucket, accessKey: "NOT-A-KEY");

        var error = await Assert.ThrowsAsync<ObjectStoreResponseException>(() => misconfigured.GetAsync("sha256/ab/abc", CancellationToken.None));

        Assert.Equal((HttpStatusCode.Forbidden, "InvalidAccessKeyId"), (error.StatusCode, error.ErrorCode));
        // A worker with a wrong key must not fail every image it takes: its batches fail and are retried.
        Assert.False(ObjectStoreErrors.IsPermanent(error));
    }

    private static async Task<IObjectStore> CreateStoreAsync(string bucket, string? accessKey = null)
    {
        var services = await TestServices.GetAsync();
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ObjectStore:Provider"] = "minio",
            ["ObjectStore:Endpoint"] = services.S3Endpoint,
            ["ObjectStore:AccessKey"] = accessKey ?? services.S3AccessKey,
            ["ObjectStore:SecretKey"] = services.S3SecretKey,
            ["ObjectStore:Bucket"] = bucket,
        }).Build();
        return new ServiceCollection().AddClassifierObjectStore(configuration).BuildServiceProvider().GetRequiredService<IObjectStore>();
    }
}
