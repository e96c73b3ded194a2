using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Components.Models;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Components;

/// <summary>
/// A version that failed to load is not downloaded and loaded again on every batch: its recorded failure answers until a
/// back-off has passed (5 s, doubling), while another active version, or a promotion, is tried at once.
/// </summary>
public sealed class ModelLoadBackOffTests : IDisposable
{
    private readonly InMemoryDatabase _database = new();
    private readonly MemoryObjectStore _store = new();
    private readonly MovableClock _clock = new();
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("wc-model-backoff-");
    private readonly ServiceProvider _services;
    private readonly RegistryModelProvider _provider;

    public ModelLoadBackOffTests()
    {
        _services = ModelRegistryHarness.Services(_database, _store);
        _provider = ModelRegistryHarness.Provider(_services, _data.FullName, _clock);
    }

    [Fact]
    public async Task Acquire_NoModelAndTheActiveVersionFailsToLoad_BatchesWithinTheBackOffFailFastThenItIsTriedAgain()
    {
        // Its artifact is missing: every try reads the store once.
        await TinyModels.PromoteAsync(_database.Context, _store, "v1", withFile: false);
        var first = await Assert.ThrowsAsync<FileNotFoundException>(AcquireAsync);

        for (var batch = 0; batch < 5; batch++)
        {
            var again = await Assert.ThrowsAnyAsync<Exception>(AcquireAsync);
            Assert.Equal(first.Message, again.Message);
            _clock.Advance(TimeSpan.FromSeconds(0.9));
        }
        Assert.Equal(1, _store.Reads);
        Assert.Equal(new ModelLoadFailure("v1", first.Message), _provider.LoadFailure);

        // 5 s after the failure: tried again, and failed, the next wait is 10 s.
        _clock.Advance(TimeSpan.FromSeconds(0.5));
        await Assert.ThrowsAsync<FileNotFoundException>(AcquireAsync);
        Assert.Equal(2, _store.Reads);
        _clock.Advance(TimeSpan.FromSeconds(9));
        await Assert.ThrowsAnyAsync<Exception>(AcquireAsync);
        Assert.Equal(2, _store.Reads);
        _clock.Advance(TimeSpan.FromSeconds(1));
        await Assert.ThrowsAsync<FileNotFoundException>(AcquireAsync);
        Assert.Equal(3, _store.Reads);
        Assert.Equal("v1", _provider.LoadFailure?.Version);
    }

    [Fact]
    public async Task Acquire_WallClockSteppedBackWithinTheBackOff_TheVersionIsTriedAgainOnceTheBackOffHasPassed()
    {
        await TinyModels.PromoteAsync(_database.Context, _store, "v1", withFile: false);
        await Assert.ThrowsAsync<FileNotFoundException>(AcquireAsync);

        _clock.StepWallClock(TimeSpan.FromHours(-1));
        _clock.Advance(RegistryModelProvider.FirstLoadBackOff);
        await Assert.ThrowsAsync<FileNotFoundException>(AcquireAsync);

        Assert.Equal(2, _store.Reads);
    }

    [Fact]
    public async Task Acquire_NoModelWithinTheBackOff_AnotherActiveVersionIsLoadedAtOnce()
    {
        await TinyModels.PromoteAsync(_database.Context, _store, "v1", withFile: false);
        await Assert.ThrowsAsync<FileNotFoundException>(AcquireAsync);

        // Promoted while this worker missed the event: the next batch's registry read sees it.
        await TinyModels.PromoteAsync(_database.Context, _store, "v2");
        using var lease = await _provider.AcquireAsync(CancellationToken.None);

        Assert.Equal("v2", lease.Classifier.Card.Version);
        Assert.Null(_provider.LoadFailure);
    }

    [Fact]
    public async Task ModelPromoted_FailedVersionPromotedAgainWithinTheBackOff_IsTriedAtOnce()
    {
        await TinyModels.PromoteAsync(_database.Context, _store, "v1", withFile: false);
        await Assert.ThrowsAsync<FileNotFoundException>(AcquireAsync);
        await Assert.ThrowsAnyAsync<Exception>(() => _provider.RefreshAsync(CancellationToken.None));
        Assert.Equal(1, _store.Reads);

        await PromoteAgainAsync("v1");
        await ConsumePromotedAsync("v1");

        Assert.Equal(2, _store.Reads);
    }

    [Fact]
    public async Task Acquire_FailedVersionPromotedAgainWithoutTheEvent_IsTriedAtOnce()
    {
        await TinyModels.PromoteAsync(_database.Context, _store, "v1", withFile: false);
        await Assert.ThrowsAsync<FileNotFoundException>(AcquireAsync);

        // The event was lost: the registry's PromotedAt alone says it was promoted again.
        await PromoteAgainAsync("v1");
        await Assert.ThrowsAsync<FileNotFoundException>(AcquireAsync);

        Assert.Equal(2, _store.Reads);
    }

    [Fact]
    public async Task Acquire_FailedVersionPromotedAgainByAnApiWhoseClockIsBehind_IsTriedAtOnce()
    {
        await TinyModels.PromoteAsync(_database.Context, _store, "v1", withFile: false);
        await Assert.ThrowsAsync<FileNotFoundException>(AcquireAsync);

        // Its PromotedAt is earlier than the one recorded with the failure, yet it is a promotion since.
        await PromoteAgainAsync("v1", by: TimeSpan.FromMinutes(-5));
        await Assert.ThrowsAsync<FileNotFoundException>(AcquireAsync);

        Assert.Equal(2, _store.Reads);
    }

    [Fact]
    public async Task ModelPromoted_ABatchFailedToLoadThePromotedVersionFirst_ItIsNotLoadedAgain()
    {
        // A worker without a model: the batch just after the promotion tries it, then the event's refresh comes.
        await TinyModels.PromoteAsync(_database.Context, _store, "v1", withFile: false);
        await Assert.ThrowsAsync<FileNotFoundException>(AcquireAsync);

        await ConsumePromotedAsync("v1");

        Assert.Equal((1, "v1"), (_store.Reads, _provider.LoadFailure?.Version));
    }

    [Fact]
    public async Task Refresh_ServingAModelWhenTheNextVersionFails_KeepsServingItWithinTheBackOff()
    {
        await TinyModels.PromoteAsync(_database.Context, _store, "v1");
        Assert.True(await _provider.RefreshAsync(CancellationToken.None));
        await TinyModels.PromoteAsync(_database.Context, _store, "v2", withFile: false);
        var reads = _store.Reads;
        await Assert.ThrowsAsync<FileNotFoundException>(() => _provider.RefreshAsync(CancellationToken.None));
        await Assert.ThrowsAnyAsync<Exception>(() => _provider.RefreshAsync(CancellationToken.None));

        using var lease = await _provider.AcquireAsync(CancellationToken.None);
        Assert.Equal(("v1", "v2", reads + 1), (lease.Classifier.Card.Version, _provider.LoadFailure?.Version, _store.Reads));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Refresh_CorruptArtifactFixedInTheStore_TheFixedModelIsServedAfterTheBackOffOrOnPromotion(bool promotedAgain)
    {
        await TinyModels.PromoteAsync(_database.Context, _store, "v1", withFile: false);
        await TinyModels.PutFileAsync(_store, "v1", [1, 2, 3, 4]);
        await Assert.ThrowsAnyAsync<Exception>(AcquireAsync);
        Assert.Equal("v1", _provider.LoadFailure?.Version);

        // The operator uploads good files; the cached copy of the corrupt ones must not be loaded again.
        await TinyModels.PutFileAsync(_store, "v1", TinyModels.Onnx("v1"));
        if (promotedAgain)
        {
            await PromoteAgainAsync("v1");
            Assert.True(await _provider.RefreshAsync(CancellationToken.None));
        }
        else
        {
            _clock.Advance(RegistryModelProvider.FirstLoadBackOff);
        }

        using var lease = await _provider.AcquireAsync(CancellationToken.None);
        Assert.Equal("v1", lease.Classifier.Card.Version);
        Assert.Null(_provider.LoadFailure);
    }

    [Fact]
    public async Task Refresh_LoadFailsOnAMissingBackbone_TheCachedCopyIsKeptAndNotDownloadedAgain()
    {
        // A head on a backbone that is not under Model:BackbonesDirectory: its files are fine, the host lacks the backbone.
        await TinyModels.PromoteAsync(_database.Context, _store, "v1", withFile: false);
        var record = _database.Context.Models.Single(m => m.Version == "v1");
        record.CardJson = System.Text.Json.JsonSerializer.Serialize(new ModelCard
        {
            Version = "v1",
            Labels = ["a", "b"],
            Backbone = "resnet18-imagenet",
            Head = "head.onnx",
            Input = new ModelInputSpec()
        }, ModelCard.JsonOptions);
        await _database.Context.SaveChangesAsync();
        await _store.PutAsync(ModelRegistry.PrefixFor("v1") + "head.onnx", TinyModels.Onnx("v1"), "application/octet-stream", CancellationToken.None);
        using var provider = new RegistryModelProvider(_services.GetRequiredService<IServiceScopeFactory>(),
            new ModelOptions { InferenceLanes = 1, InferenceThreads = 1, BackbonesDirectory = Path.Combine(_data.FullName, "no-backbones") },
            new ServiceOptions { DataDirectory = _data.FullName }, _clock, NullLogger<RegistryModelProvider>.Instance);

        var failed = await Assert.ThrowsAsync<FileNotFoundException>(() => provider.RefreshAsync(CancellationToken.None));
        Assert.StartsWith(Path.Combine(_data.FullName, "no-backbones"), failed.FileName);
        _clock.Advance(RegistryModelProvider.FirstLoadBackOff);
        await Assert.ThrowsAsync<FileNotFoundException>(() => provider.RefreshAsync(CancellationToken.None));

        // Tried twice, downloaded once: the copy was kept.
        Assert.Equal(1, _store.Reads);
        Assert.True(File.Exists(Path.Combine(_data.FullName, "model-cache", "v1", "head.onnx")));
    }

    private async Task PromoteAgainAsync(string version, TimeSpan? by = null)
    {
        var record = _database.Context.Models.Single(m => m.Version == version);
        record.PromotedAt = DateTime.UtcNow + (by ?? TimeSpan.FromSeconds(1));
        await _database.Context.SaveChangesAsync();
    }

    [Fact]
    public async Task Watcher_VersionFailingToLoad_WakesForEachTryOfTheBackOffBeforeItsNextTick()
    {
        await TinyModels.PromoteAsync(_database.Context, _store, "v1", withFile: false);
        _clock.TimersToFire = 5;
        using var watcher = new ModelWatcher(_provider, new ModelOptions { RefreshSeconds = 30 }, _clock, NullLogger<ModelWatcher>.Instance);

        await watcher.StartAsync(CancellationToken.None);
        for (var waited = 0; _clock.Delays.Count < 6 && waited < 200; waited++) await Task.Delay(50);
        await watcher.StopAsync(CancellationToken.None);

        // Tries at 0, 5, 15, 35 and 75 s (back-offs of 5, 10, 20, 40 and 60 s); a tick at 65 s between the last two.
        Assert.Equal([5, 10, 20, 30, 10, 30], _clock.Delays.Take(6).Select(d => Math.Round(d.TotalSeconds)));
        Assert.Equal(5, _store.Reads);
    }

    [Fact]
    public async Task Watcher_TimerFiringAFewMillisecondsEarly_StillFindsTheRetryDue()
    {
        await TinyModels.PromoteAsync(_database.Context, _store, "v1", withFile: false);
        // Linux's coarse tick count: a timer may fire a few milliseconds before its due time.
        (_clock.TimersToFire, _clock.EarlyBy) = (1, TimeSpan.FromMilliseconds(3));
        var logger = new ListLogger<ModelWatcher>();
        using var watcher = new ModelWatcher(_provider, new ModelOptions { RefreshSeconds = 30 }, _clock, logger);

        await watcher.StartAsync(CancellationToken.None);
        for (var waited = 0; _clock.Delays.Count < 2 && waited < 200; waited++) await Task.Delay(50);
        await watcher.StopAsync(CancellationToken.None);

        // The wake tried the version again, rather than getting its recorded failure and waking again 3 ms later.
        Assert.Equal(2, _store.Reads);
        Assert.All(logger.Entries, e => Assert.IsType<FileNotFoundException>(e.Exception));
    }

    [Fact]
    public async Task Watcher_RefreshAnsweredWithTheRecordedFailure_LogsAWarningWithoutTheStack()
    {
        // A batch tried the version first: the watcher's refresh within the back-off gets its recorded failure.
        await TinyModels.PromoteAsync(_database.Context, _store, "v1", withFile: false);
        await Assert.ThrowsAsync<FileNotFoundException>(AcquireAsync);
        var logger = new ListLogger<ModelWatcher>();
        using var watcher = new ModelWatcher(_provider, new ModelOptions { RefreshSeconds = 30 }, _clock, logger);

        await watcher.StartAsync(CancellationToken.None);
        for (var waited = 0; _clock.Delays.Count < 1 && waited < 200; waited++) await Task.Delay(50);
        await watcher.StopAsync(CancellationToken.None);

        var entry = Assert.Single(logger.Entries);
        Assert.Equal((LogLevel.Warning, null), (entry.Level, entry.Exception));
        Assert.Equal(1, _store.Reads);
    }

    private sealed class ListLogger<T> : ILogger<T>
    {
        private readonly Lock _lock = new();
        private readonly List<(LogLevel Level, Exception? Exception)> _entries = [];

        public IReadOnlyList<(LogLevel Level, Exception? Exception)> Entries
        {
            get
            {
                lock (_lock) return [.. _entries];
            }
        }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_lock) _entries.Add((logLevel, exception));
        }
    }

    /// <summary>Delivers <see cref="ModelPromoted"/> to the worker's consumer, which refreshes the provider.</summary>
    private async Task ConsumePromotedAsync(string version)
    {
        await using var bus = new ServiceCollection()
            .AddSingleton(_provider)
            .AddPatientTestHarness(x => x.AddConsumer<ModelPromotedConsumer>())
            .BuildServiceProvider(true);
        var harness = bus.GetRequiredService<ITestHarness>();
        await harness.Start();
        await harness.Bus.Publish(new ModelPromoted { Version = version, PromotedAt = DateTimeOffset.UtcNow });
        Assert.True(await harness.Consumed.Any<ModelPromoted>());
    }

    private async Task AcquireAsync()
    {
        using var lease = await _provider.AcquireAsync(CancellationToken.None);
    }

    private sealed class MovableClock : TimeProvider
    {
        private readonly Lock _lock = new();
        // The monotonic timestamp moves only when told: the back-offs measured with it are then exact, however slowly a
        // loaded machine runs the test (real time between a failure and the watcher's wake shortened the 5 s wait it saw).
        private readonly long _start = System.GetTimestamp();
        private TimeSpan _by;
        private TimeSpan _wallClockStep;

        /// <summary>Time passes: the wall clock and the monotonic timestamp both move on.</summary>
        public void Advance(TimeSpan by)
        {
            lock (_lock) _by += by;
        }

        /// <summary>How many timers (Task.Delay's) fire, at once, the clock moved on by their due time; later ones never fire.</summary>
        public int TimersToFire { get; set; }

        /// <summary>How much before its due time a timer fires.</summary>
        public TimeSpan EarlyBy { get; set; }

        /// <summary>The due times of the timers created, in order.</summary>
        public List<TimeSpan> Delays { get; } = [];

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            lock (_lock)
            {
                Delays.Add(dueTime);
                if (Delays.Count > TimersToFire) return new IdleTimer();
                _by += dueTime - EarlyBy;
            }
            ThreadPool.QueueUserWorkItem(_ => callback(state));
            return new IdleTimer();
        }

        private sealed class IdleTimer : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }

        /// <summary>The wall clock alone is set (NTP after boot): the timestamp does not move.</summary>
        public void StepWallClock(TimeSpan by) => _wallClockStep += by;

        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + _by + _wallClockStep;

        public override long GetTimestamp() => _start + (long)(_by.TotalSeconds * TimestampFrequency);
    }

    public void Dispose()
    {
        _provider.Dispose();
        _services.Dispose();
        _database.Dispose();
        _data.Delete(recursive: true);
    }
}
