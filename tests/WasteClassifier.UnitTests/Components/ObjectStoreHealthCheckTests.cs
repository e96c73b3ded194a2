using Microsoft.Extensions.Diagnostics.HealthChecks;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.UnitTests.Components;

/// <summary>The object store's readiness check: a store that does not answer is unhealthy; only the caller's cancellation passes through.</summary>
public sealed class ObjectStoreHealthCheckTests
{
    [Fact]
    public async Task Check_StoreClientTimesOut_UnhealthyDidNotAnswerInTime()
    {
        // As the Minio client's request timeout ends BucketExistsAsync: HttpClient's TaskCanceledException, no caller cancelling.
        var store = new CheckingStore(_ => throw new TaskCanceledException("The request was canceled due to the configured HttpClient.Timeout", new TimeoutException()));

        var result = await new ObjectStoreHealthCheck(store).CheckHealthAsync(new HealthCheckContext());

        Assert.Equal(HealthStatus.Unhealthy, result.Status);
        Assert.Equal("the object store did not answer in time", result.Description);
    }

    [Fact]
    public async Task Check_CallerCancels_CancellationPassesThrough()
    {
        using var caller = new CancellationTokenSource();
        await caller.CancelAsync();
        var store = new CheckingStore(token => Task.FromCanceled(token));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => new ObjectStoreHealthCheck(store).CheckHealthAsync(new HealthCheckContext(), caller.Token));
    }

    /// <summary>A store whose <see cref="IObjectStore.CheckAsync"/> is <paramref name="check"/>; nothing else is used.</summary>
    private sealed class CheckingStore(Func<CancellationToken, Task> check) : IObjectStore
    {
        public Task CheckAsync(CancellationToken cancellationToken) => check(cancellationToken);

        public Task EnsureReadyAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<byte[]?> GetAsync(string key, long maxBytes, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task DeleteAsync(string key, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}
