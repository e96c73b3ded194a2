using Microsoft.AspNetCore.OpenApi;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using WasteClassifier.Api.Extensions;

namespace WasteClassifier.UnitTests.Api;

/// <summary>
/// <c>/openapi/v1.json</c> is built once per process: callers that come while it is being built wait for that build, one
/// that leaves (its client aborted) stops only its own wait, and a build that fails leaves the next caller to build it:
/// nothing failed is kept.
/// </summary>
public sealed class OpenApiDocumentCacheTests : IAsyncDisposable
{
    private readonly Builds _builds = new();
    private ServiceProvider? _services;

    [Fact]
    public async Task Get_CallersDuringTheFirstBuild_WaitForItAndShareIt()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _builds.During = _ => { started.TrySetResult(); return release.Task; };
        var cache = Cache();

        // Started together: each reaches the build or the wait for it before the first build can finish.
        var callers = Enumerable.Range(0, 5).Select(_ => cache.GetAsync(CancellationToken.None)).ToList();
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, _builds.Count);
        release.SetResult();

        var answers = await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.All(answers, a => Assert.Same(answers[0], a));
        Assert.Same(answers[0], await cache.GetAsync(CancellationToken.None));
        Assert.Equal(1, _builds.Count);
    }

    [Fact]
    public async Task Get_FirstCallerLeavesDuringTheBuild_TheBuildGoesOnForTheWaitingCaller()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // Honours the token it is given, as the real generator does: built under the first caller's, it would stop here.
        _builds.During = cancellationToken => { started.TrySetResult(); return release.Task.WaitAsync(cancellationToken); };
        var cache = Cache();
        using var leaving = new CancellationTokenSource();

        var first = cache.GetAsync(leaving.Token);
        var waiting = cache.GetAsync(CancellationToken.None);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await leaving.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.False(waiting.IsCompleted);
        release.SetResult();

        var json = await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Contains("build 1", System.Text.Encoding.UTF8.GetString(json));
        Assert.Same(json, await cache.GetAsync(CancellationToken.None));
        Assert.Equal(1, _builds.Count);
    }

    [Fact]
    public async Task Get_WaitingCallerLeaves_OnlyItsWaitEnds()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _builds.During = _ => { started.TrySetResult(); return release.Task; };
        var cache = Cache();
        using var leaving = new CancellationTokenSource();

        var first = cache.GetAsync(CancellationToken.None);
        var waiting = cache.GetAsync(leaving.Token);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await leaving.CancelAsync();
        // It leaves while the build still runs: not held until the build ends.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.False(first.IsCompleted);
        release.SetResult();

        Assert.Contains("build 1", System.Text.Encoding.UTF8.GetString(await first.WaitAsync(TimeSpan.FromSeconds(10))));
        Assert.Equal(1, _builds.Count);
    }

    [Fact]
    public async Task Get_BuildFailed_NotKeptTheNextCallerBuildsIt()
    {
        _builds.During = _ => _builds.Count == 1 ? Task.FromException(new InvalidOperationException("a transformer failed")) : Task.CompletedTask;
        var cache = Cache();

        await Assert.ThrowsAsync<InvalidOperationException>(() => cache.GetAsync(CancellationToken.None));

        var json = await cache.GetAsync(CancellationToken.None);
        Assert.Contains("build 2", System.Text.Encoding.UTF8.GetString(json));
        Assert.Same(json, await cache.GetAsync(CancellationToken.None));
        Assert.Equal(2, _builds.Count);
    }

    private OpenApiDocumentCache Cache()
    {
        _services = new ServiceCollection()
            .AddKeyedSingleton<IOpenApiDocumentProvider>(OpenApiDocumentCache.DocumentName, _builds)
            .AddOptions()
            .BuildServiceProvider();
        return new OpenApiDocumentCache(_services, _services.GetRequiredService<IOptionsMonitor<OpenApiOptions>>());
    }

    public async ValueTask DisposeAsync()
    {
        if (_services is not null) await _services.DisposeAsync();
    }

    /// <summary>Counts the builds (each document names its own), and lets a test act inside one.</summary>
    private sealed class Builds : IOpenApiDocumentProvider
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public Func<CancellationToken, Task>? During { get; set; }

        public async Task<OpenApiDocument> GetOpenApiDocumentAsync(CancellationToken cancellationToken = default)
        {
            var build = Interlocked.Increment(ref _count);
            if (During is { } during) await during(cancellationToken);
            return new OpenApiDocument { Info = new OpenApiInfo { Title = "WasteClassifier", Version = $"build {build}" }, Paths = [] };
        }
    }
}
