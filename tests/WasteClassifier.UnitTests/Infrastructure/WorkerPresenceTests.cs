using System.Net.Sockets;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using WasteClassifier.Components.Classifying;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.LoadTesting;
using WasteClassifier.UnitTests.Support;
using WasteClassifier.Testing;

namespace WasteClassifier.UnitTests.Infrastructure;

/// <summary>Worker presence: what a heartbeat row says at a time, and the beat, stop and sweep on the embedded database.</summary>
public sealed class WorkerPresenceTests
{
    [Fact]
    public void StatusOf_OnAManualClock_UpWithinThreeIntervalsThenMissing()
    {
        var clock = new ManualClock();
        var row = Row(lastSeen: clock.GetUtcNow().UtcDateTime, heartbeatSeconds: 15);

        Assert.Equal(WorkerPresence.Up, WorkerPresence.StatusOf(row, clock.GetUtcNow().UtcDateTime));
        clock.Advance(TimeSpan.FromSeconds(45));
        // Two beats missed, the third due now: still up.
        Assert.Equal(WorkerPresence.Up, WorkerPresence.StatusOf(row, clock.GetUtcNow().UtcDateTime));
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(WorkerPresence.Missing, WorkerPresence.StatusOf(row, clock.GetUtcNow().UtcDateTime));

        // A beat brings it back.
        row.LastSeenAt = clock.GetUtcNow().UtcDateTime;
        Assert.Equal(WorkerPresence.Up, WorkerPresence.StatusOf(row, clock.GetUtcNow().UtcDateTime));
    }

    [Fact]
    public void StatusOf_EachWorkerJudgedByItsOwnInterval()
    {
        var clock = new ManualClock();
        var fast = Row(lastSeen: clock.GetUtcNow().UtcDateTime, heartbeatSeconds: 5);
        var slow = Row(lastSeen: clock.GetUtcNow().UtcDateTime, heartbeatSeconds: 60);

        clock.Advance(TimeSpan.FromSeconds(16));

        Assert.Equal(WorkerPresence.Missing, WorkerPresence.StatusOf(fast, clock.GetUtcNow().UtcDateTime));
        Assert.Equal(WorkerPresence.Up, WorkerPresence.StatusOf(slow, clock.GetUtcNow().UtcDateTime));
    }

    [Fact]
    public void StatusOf_StoppedWorker_IsStoppedNotUpHoweverRecent()
    {
        var clock = new ManualClock();
        var now = clock.GetUtcNow().UtcDateTime;
        var row = Row(lastSeen: now, heartbeatSeconds: 15);
        row.StoppedAt = now;

        Assert.Equal(WorkerPresence.Stopped, WorkerPresence.StatusOf(row, now));
    }

    [Fact]
    public async Task HeartbeatService_BeatThenGracefulStop_UpWithItsModelThenStopped()
    {
        using var database = new InMemoryDatabase();
        var options = new WorkerOptions { Id = "worker-unit", HeartbeatSeconds = 15 };
        using var services = Services(database);
        var service = new WorkerHeartbeatService(services.GetRequiredService<IServiceScopeFactory>(), options, new LoadedModel("v7"), TimeProvider.System,
            NullLogger<WorkerHeartbeatService>.Instance);

        await service.BeatAsync(CancellationToken.None);

        var row = await ReadAsync(database, "worker-unit");
        Assert.Equal(Environment.MachineName, row.HostName);
        Assert.Equal("v7", row.ModelVersion);
        Assert.Equal(15, row.HeartbeatSeconds);
        Assert.Null(row.StoppedAt);
        Assert.Equal(WorkerPresence.Up, WorkerPresence.StatusOf(row, await WorkerPresence.DatabaseNowAsync(database.Context, CancellationToken.None)));

        await service.StopAsync(CancellationToken.None);

        row = await ReadAsync(database, "worker-unit");
        Assert.NotNull(row.StoppedAt);
        Assert.Equal(WorkerPresence.Stopped, WorkerPresence.StatusOf(row, await WorkerPresence.DatabaseNowAsync(database.Context, CancellationToken.None)));

        // The same id started again (a container restarted in place): its next beat clears the stop.
        var restarted = new WorkerHeartbeatService(services.GetRequiredService<IServiceScopeFactory>(), options, new LoadedModel("v7"), TimeProvider.System,
            NullLogger<WorkerHeartbeatService>.Instance);
        await restarted.BeatAsync(CancellationToken.None);
        Assert.Null((await ReadAsync(database, "worker-unit")).StoppedAt);
        Assert.Equal(1, await database.Context.WorkerHeartbeats.CountAsync());
    }

    [Fact]
    public async Task HeartbeatService_BeatBeforeAnyModelLoaded_RecordsANullModelVersion()
    {
        using var database = new InMemoryDatabase();
        using var services = Services(database);
        var service = new WorkerHeartbeatService(services.GetRequiredService<IServiceScopeFactory>(), new WorkerOptions { Id = "no-model" }, new NoModel(),
            TimeProvider.System, NullLogger<WorkerHeartbeatService>.Instance);

        await service.BeatAsync(CancellationToken.None);

        var row = await ReadAsync(database, "no-model");
        Assert.Null(row.ModelVersion);
        Assert.Null(row.StoppedAt);
    }

    [Fact]
    public async Task HeartbeatService_BeatInFlightWhenStopping_TheStopMarkComesAfterItAndStays()
    {
        using var database = new InMemoryDatabase();
        var gate = new GatedWrites();
        using var services = Services(database, gate);
        var service = new WorkerHeartbeatService(services.GetRequiredService<IServiceScopeFactory>(), new WorkerOptions { Id = "w-stop" }, new LoadedModel("v1"),
            TimeProvider.System, NullLogger<WorkerHeartbeatService>.Instance);
        Assert.True(await service.BeatAsync(CancellationToken.None));

        // A beat held inside its write, as one still in flight when the shutdown's timeout runs out.
        gate.Hold();
        var inFlight = service.BeatAsync(CancellationToken.None);
        await gate.Entered.WaitAsync(TimeSpan.FromSeconds(30));
        var stopping = service.StopAsync(CancellationToken.None);
        gate.Release();
        Assert.True(await inFlight);
        await stopping;

        Assert.NotNull((await ReadAsync(database, "w-stop")).StoppedAt);

        // A beat once stopping has begun writes nothing, and says so (the loop then logs no "works again").
        Assert.False(await service.BeatAsync(CancellationToken.None));
        Assert.NotNull((await ReadAsync(database, "w-stop")).StoppedAt);
    }

    [Fact]
    public void HeartbeatService_FailingBeats_LoggedOncePerReasonThenEveryFiveMinutes()
    {
        var clock = new ManualClock();
        var logger = new ListLogger();
        using var services = new ServiceCollection().BuildServiceProvider();
        var service = new WorkerHeartbeatService(services.GetRequiredService<IServiceScopeFactory>(), new WorkerOptions { Id = "w-log", HeartbeatSeconds = 15 },
            new NoModel(), clock, logger);

        service.BeatFailed(new InvalidOperationException("connection refused"));
        for (var i = 0; i < 19; i++)
        {
            clock.Advance(TimeSpan.FromSeconds(15));
            service.BeatFailed(new InvalidOperationException("connection refused"));
        }
        // 20 failures in 4 min 45 s: the first alone is logged.
        Assert.Single(logger.Messages);

        clock.Advance(TimeSpan.FromSeconds(15));
        service.BeatFailed(new InvalidOperationException("connection refused"));
        Assert.Equal(2, logger.Messages.Count);
        Assert.Contains("failed 19 more time(s) for this reason", logger.Messages[1]);

        // Another reason is logged at once.
        service.BeatFailed(new InvalidOperationException("password authentication failed"));
        Assert.Equal(3, logger.Messages.Count);
        Assert.Contains("password authentication failed", logger.Messages[2]);

        // Recovery is said once, and the next failure is logged again even for a reason seen before.
        service.BeatRecorded();
        service.BeatRecorded();
        service.BeatFailed(new InvalidOperationException("password authentication failed"));
        Assert.Equal(5, logger.Messages.Count);
        Assert.Contains("works again", logger.Messages[3]);
    }

    [Fact]
    public void HeartbeatService_OutagesEndingInRetryLimitExceeded_LoggedOncePerCauseWithTheException()
    {
        var logger = new ListLogger();
        using var services = new ServiceCollection().BuildServiceProvider();
        var service = new WorkerHeartbeatService(services.GetRequiredService<IServiceScopeFactory>(), new WorkerOptions { Id = "w-cause", HeartbeatSeconds = 15 },
            new NoModel(), new ManualClock(), logger);

        // EF's retrying strategy ends every outage in the same exception, the cause inside it.
        service.BeatFailed(new RetryLimitExceededException("Maximum number of retries (6) exceeded",
            new NpgsqlException("Failed to connect to 10.0.0.5:5432", new SocketException((int)SocketError.ConnectionRefused))));
        service.BeatFailed(new RetryLimitExceededException("Maximum number of retries (6) exceeded",
            new NpgsqlException("Exception while reading from stream", new TimeoutException())));

        Assert.Equal(2, logger.Messages.Count);
        Assert.Contains("Failed to connect to 10.0.0.5:5432 (NpgsqlException: ConnectionRefused)", logger.Messages[0]);
        Assert.Contains("Exception while reading from stream (NpgsqlException: timeout)", logger.Messages[1]);
        Assert.All(logger.Exceptions, e => Assert.IsType<RetryLimitExceededException>(e));
    }

    [Fact]
    public async Task Beat_LastSeenIsTheDatabasesClockNotTheWorkers()
    {
        using var database = new InMemoryDatabase();
        var before = await WorkerPresence.DatabaseNowAsync(database.Context, CancellationToken.None);

        // The row's own times are ignored for last_seen_at: a worker whose clock is a day behind is still up.
        await WorkerPresence.BeatAsync(database.Context, Row(lastSeen: before.AddDays(-1), heartbeatSeconds: 15), CancellationToken.None);

        var row = await ReadAsync(database, "w");
        Assert.InRange(row.LastSeenAt, before, await WorkerPresence.DatabaseNowAsync(database.Context, CancellationToken.None));
    }

    [Fact]
    public async Task Sweep_DeletesOnlyWorkersNotSeenForTheRetention()
    {
        using var database = new InMemoryDatabase();
        var now = await WorkerPresence.DatabaseNowAsync(database.Context, CancellationToken.None);
        var old = Row(lastSeen: now.AddHours(-25), heartbeatSeconds: 15);
        old.WorkerId = "old";
        var recent = Row(lastSeen: now.AddHours(-23), heartbeatSeconds: 15);
        recent.WorkerId = "recent";
        database.Context.WorkerHeartbeats.AddRange(old, recent);
        await database.Context.SaveChangesAsync();

        Assert.Equal(1, await WorkerPresence.SweepAsync(database.Context, TimeSpan.FromHours(24), CancellationToken.None));

        Assert.Equal(["recent"], await database.Context.WorkerHeartbeats.AsNoTracking().Select(w => w.WorkerId).ToListAsync());
    }

    private static WorkerHeartbeat Row(DateTime lastSeen, int heartbeatSeconds) => new()
    {
        WorkerId = "w",
        HostName = "host",
        ProcessStartedAt = lastSeen,
        HeartbeatSeconds = heartbeatSeconds,
        LastSeenAt = lastSeen,
    };

    private static async Task<WorkerHeartbeat> ReadAsync(InMemoryDatabase database, string id)
    {
        await using var db = database.NewContext();
        return await db.WorkerHeartbeats.AsNoTracking().SingleAsync(w => w.WorkerId == id);
    }

    private static ServiceProvider Services(InMemoryDatabase database, params IInterceptor[] interceptors) =>
        new ServiceCollection().AddScoped(_ => database.NewContext(interceptors)).BuildServiceProvider();

    private sealed class NoModel : IModelProvider
    {
        public ModelCard? LoadedCard => null;

        public Task<ModelLease> AcquireAsync(CancellationToken cancellationToken) => throw new NotSupportedException("no batch runs here");
    }

    private sealed class ListLogger : ILogger<WorkerHeartbeatService>
    {
        public List<string> Messages { get; } = [];

        public List<Exception?> Exceptions { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            Messages.Add(formatter(state, exception));
            Exceptions.Add(exception);
        }
    }

    private sealed class LoadedModel(string version) : IModelProvider
    {
        public ModelCard? LoadedCard { get; } = new() { Version = version, Labels = ["a", "b"], Input = new ModelInputSpec() };

        public Task<ModelLease> AcquireAsync(CancellationToken cancellationToken) => throw new NotSupportedException("no batch runs here");
    }
}
