using System.Data.Common;
using System.Diagnostics;
using System.Net.Sockets;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using WasteClassifier.Components.Classifying;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.LoadTesting;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Components;

/// <summary>
/// The sweeper of old heartbeat rows on a manual clock: a failed sweep (the table not there yet, an outage) is tried again
/// after a minute, the wait doubling up to the hourly interval, and logged once per reason. Only conditions are waited for.
/// </summary>
public sealed class WorkerHeartbeatSweeperTests
{
    [Fact]
    public async Task Sweeper_FailingSweeps_TriedAgainAfterAMinuteDoublingToTheHourThenHourlyOnceItWorks()
    {
        using var database = new InMemoryDatabase();
        var commands = new FailingCommands { Reason = "relation \"worker_heartbeats\" does not exist" };
        await using var services = new ServiceCollection().AddScoped(_ => database.NewContext(commands)).BuildServiceProvider();
        var clock = new ManualClock();
        var logger = new ListLogger();
        var sweeper = new WorkerHeartbeatSweeper(services.GetRequiredService<IServiceScopeFactory>(), new WorkerHeartbeatRetention(24), clock, logger);
        await sweeper.StartAsync(CancellationToken.None);
        try
        {
            // The sweep at start and the next two fail for the same reason: logged once, not at every try.
            List<TimeSpan> waits = [await NextWaitAsync(clock), await AdvanceToNextSweepAsync(clock), await AdvanceToNextSweepAsync(clock)];
            Assert.Single(logger.Messages);
            Assert.Contains("does not exist (InvalidOperationException); trying again in 1 min", logger.Messages[0]);

            // Another reason is logged at once.
            commands.Reason = "connection refused";
            waits.Add(await AdvanceToNextSweepAsync(clock));
            Assert.Equal(2, logger.Messages.Count);
            Assert.Contains("connection refused (InvalidOperationException); trying again in 8 min", logger.Messages[1]);
            for (var i = 0; i < 4; i++) waits.Add(await AdvanceToNextSweepAsync(clock));
            Assert.Equal([1, 2, 4, 8, 16, 32, 60, 60], waits.Select(w => w.TotalMinutes));

            // Works again: an old row goes, recovery is said once, and the next sweep is an hour later.
            database.Context.WorkerHeartbeats.Add(new WorkerHeartbeat
            {
                WorkerId = "gone",
                HostName = "host",
                HeartbeatSeconds = 15,
                ProcessStartedAt = DateTime.UtcNow.AddDays(-2),
                LastSeenAt = DateTime.UtcNow.AddDays(-2),
            });
            await database.Context.SaveChangesAsync();
            commands.Reason = null;
            Assert.Equal(TimeSpan.FromHours(1), await AdvanceToNextSweepAsync(clock));
            Assert.Equal(0, await database.Context.WorkerHeartbeats.CountAsync());
            Assert.Contains("works again", logger.Messages[^1]);

            // A failure after that starts again from a minute.
            commands.Reason = "connection refused";
            Assert.Equal(TimeSpan.FromMinutes(1), await AdvanceToNextSweepAsync(clock));
        }
        finally
        {
            await sweeper.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task Sweeper_OutagesEndingInRetryLimitExceeded_LoggedOncePerCauseWithTheException()
    {
        using var database = new InMemoryDatabase();
        // EF's retrying strategy ends every outage in the same exception, the cause inside it.
        var commands = new FailingCommands
        {
            Failure = new RetryLimitExceededException("Maximum number of retries (6) exceeded",
                new NpgsqlException("Failed to connect to 10.0.0.5:5432", new SocketException((int)SocketError.ConnectionRefused))),
        };
        await using var services = new ServiceCollection().AddScoped(_ => database.NewContext(commands)).BuildServiceProvider();
        var clock = new ManualClock();
        var logger = new ListLogger();
        var sweeper = new WorkerHeartbeatSweeper(services.GetRequiredService<IServiceScopeFactory>(), new WorkerHeartbeatRetention(24), clock, logger);
        await sweeper.StartAsync(CancellationToken.None);
        try
        {
            await NextWaitAsync(clock);
            await AdvanceToNextSweepAsync(clock);
            var refused = Assert.Single(logger.Entries);
            Assert.Contains("Failed to connect to 10.0.0.5:5432 (NpgsqlException: ConnectionRefused)", refused.Message);
            Assert.IsType<RetryLimitExceededException>(refused.Exception);

            // Another cause in the same wrapper is another reason: logged at once, with its exception.
            commands.Failure = new RetryLimitExceededException("Maximum number of retries (6) exceeded",
                new NpgsqlException("Exception while reading from stream", new TimeoutException()));
            await AdvanceToNextSweepAsync(clock);
            Assert.Equal(2, logger.Entries.Count);
            Assert.Contains("Exception while reading from stream (NpgsqlException: timeout)", logger.Entries[1].Message);
            Assert.IsType<RetryLimitExceededException>(logger.Entries[1].Exception);
        }
        finally
        {
            await sweeper.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>Moves the clock to the sweep that is due, then waits until that sweep has ended; the wait it set for the next.</summary>
    private static async Task<TimeSpan> AdvanceToNextSweepAsync(ManualClock clock)
    {
        var due = clock.Pending().Single();
        clock.Advance(due - clock.Now);
        return await NextWaitAsync(clock);
    }

    /// <summary>Once a sweep has ended, its loop waits on the clock for the next: how long from now.</summary>
    private static async Task<TimeSpan> NextWaitAsync(ManualClock clock)
    {
        var deadline = Stopwatch.StartNew();
        while (clock.Pending().Count == 0 && deadline.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(1);
        return Assert.Single(clock.Pending()) - clock.Now;
    }

    /// <summary>
    /// While <see cref="Failure"/> or <see cref="Reason"/> is set, every statement fails with it (the first), as a database
    /// without the table or down.
    /// </summary>
    private sealed class FailingCommands : DbCommandInterceptor
    {
        private volatile string? _reason;
        private volatile Exception? _failure;

        public Exception? Failure
        {
            get => _failure;
            set => _failure = value;
        }

        public string? Reason
        {
            get => _reason;
            set => _reason = value;
        }

        private ValueTask<T> PassOrFail<T>(T result)
        {
            if (_failure is { } failure) throw failure;
            if (_reason is { } reason) throw new InvalidOperationException(reason);
            return ValueTask.FromResult(result);
        }

        public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default) =>
            PassOrFail(result);

        public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<int> result, CancellationToken cancellationToken = default) =>
            PassOrFail(result);
    }

    private sealed class ListLogger : ILogger<WorkerHeartbeatSweeper>
    {
        private readonly List<(string Message, Exception? Exception)> _entries = [];

        public List<string> Messages => [.. Entries.Select(e => e.Message)];

        public List<(string Message, Exception? Exception)> Entries
        {
            get { lock (_entries) return [.. _entries]; }
        }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_entries) _entries.Add((formatter(state, exception), exception));
        }
    }
}
