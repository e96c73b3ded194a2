using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.UnitTests.LoadTesting;

namespace WasteClassifier.UnitTests.Components;

/// <summary>
/// The database's and the object store's readiness checks as registered (<see cref="ObservabilityExtensions.AddClassifierHealthChecks"/>),
/// probed every 5 s on a manual clock: each reason is logged once per interval, the first time with the exception; a
/// second reason once too; a line when the check passes again, after which a failure is logged again. The answers do not
/// change. Only the checks' own log lines are counted (their categories), not the health-check framework's.
/// </summary>
public sealed class ReadinessFailureLogTests
{
    private const string MissingTable = "the database cannot be queried: table \"classifications\" cannot be read, are the migrations applied? (SqliteException: SQLite error 1)";
    private const string Unreachable = "the database is unreachable (SqliteException: SQLite error 14)";

    [Fact]
    public async Task Database_SameFailureAtEveryProbe_LoggedOnceWithTheExceptionThenOncePerIntervalWithTheCount()
    {
        // A database without the schema: every connection to ":memory:" opens an empty one.
        await using var probes = new Probes("Data Source=:memory:");

        for (var i = 0; i < 10; i++) Assert.Equal(MissingTable, await probes.DatabaseAsync());

        var first = Assert.Single(probes.Lines);
        Assert.Equal((LogLevel.Warning, $"Readiness: the database check failed: {MissingTable}"), (first.Level, first.Message));
        Assert.IsType<SqliteException>(first.Exception);

        // 50 s after the first: at the interval the same reason is logged again, with the count left out and no stack.
        probes.Clock.Advance(ReadinessFailureLog.RepeatInterval - TimeSpan.FromSeconds(50));
        Assert.Equal(MissingTable, await probes.DatabaseAsync());
        Assert.Equal(2, probes.Lines.Count);
        Assert.Equal($"Readiness: the database check failed: {MissingTable} (failed 9 more time(s) for this reason, unlogged, in the 5 minutes since it was last logged)",
            probes.Lines[1].Message);
        Assert.Null(probes.Lines[1].Exception);
    }

    [Fact]
    public async Task Database_AnotherReason_LoggedOnceTooThenNeitherAgainWithinTheInterval()
    {
        await using var probes = new Probes("Data Source=:memory:");
        Assert.Equal(MissingTable, await probes.DatabaseAsync());

        // A folder that does not exist: SQLite cannot open the file, the database is unreachable.
        probes.ConnectionString = $"Data Source={Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N"), "missing.db")}";
        for (var i = 0; i < 3; i++) Assert.Equal(Unreachable, await probes.DatabaseAsync());
        probes.ConnectionString = "Data Source=:memory:";
        for (var i = 0; i < 3; i++) Assert.Equal(MissingTable, await probes.DatabaseAsync());

        Assert.Equal([$"Readiness: the database check failed: {MissingTable}", $"Readiness: the database check failed: {Unreachable}"],
            probes.Lines.Select(l => l.Message));
        Assert.IsType<SqliteException>(probes.Lines[1].Exception);
    }

    [Fact]
    public async Task Database_PassesAgain_OneInformationLineThenTheSameFailureLoggedAgainAtOnce()
    {
        // A schema in a shared in-memory database, kept while this connection is open.
        var name = $"Data Source=ready-{Guid.NewGuid():N};Mode=Memory;Cache=Shared";
        await using var keeper = new SqliteConnection(name);
        await keeper.OpenAsync();
        await using (var context = Probes.Context(name)) await context.Database.EnsureCreatedAsync();
        await using var probes = new Probes("Data Source=:memory:");
        await probes.DatabaseAsync();

        probes.ConnectionString = name;
        for (var i = 0; i < 3; i++) Assert.Equal("Microsoft.EntityFrameworkCore.Sqlite", await probes.DatabaseAsync());
        probes.ConnectionString = "Data Source=:memory:";
        Assert.Equal(MissingTable, await probes.DatabaseAsync());

        Assert.Equal([(LogLevel.Warning, $"Readiness: the database check failed: {MissingTable}"), (LogLevel.Information, "Readiness: the database check passes again"),
            (LogLevel.Warning, $"Readiness: the database check failed: {MissingTable}")], probes.Lines.Select(l => (l.Level, l.Message)));
        Assert.IsType<SqliteException>(probes.Lines[2].Exception);
    }

    [Fact]
    public async Task ObjectStore_FailuresByReasonThenPassesAgain_EachReasonOnceAndOneRecoveryLine()
    {
        await using var probes = new Probes("Data Source=:memory:");
        probes.Store.Failure = new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused (minio:9000)");
        for (var i = 0; i < 5; i++) Assert.Equal("the object store is unreachable (HttpRequestException: ConnectionError)", await probes.ObjectStoreAsync());
        probes.Store.Failure = new BucketMissingException("images");
        for (var i = 0; i < 5; i++) Assert.Equal("the object store's bucket images does not exist", await probes.ObjectStoreAsync());
        probes.Store.Failure = null;
        for (var i = 0; i < 3; i++) Assert.Equal(nameof(FailingStore), await probes.ObjectStoreAsync());
        probes.Store.Failure = new BucketMissingException("images");
        Assert.Equal("the object store's bucket images does not exist", await probes.ObjectStoreAsync());

        Assert.Equal([
            "Readiness: the object store check failed: the object store is unreachable (HttpRequestException: ConnectionError)",
            "Readiness: the object store check failed: the object store's bucket images does not exist",
            "Readiness: the object store check passes again",
            "Readiness: the object store check failed: the object store's bucket images does not exist",
        ], probes.Lines.Select(l => l.Message));
        Assert.IsType<HttpRequestException>(probes.Lines[0].Exception);
        Assert.Equal(LogLevel.Information, probes.Lines[2].Level);
    }

    [Fact]
    public async Task TimeLimit_CheckNotAnsweringAtEveryProbe_WarnedOnceThenPassesAgainOnce()
    {
        await using var probes = new Probes("Data Source=:memory:", limitSeconds: 0.05);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        probes.Store.Answer = release.Task;

        for (var i = 0; i < 5; i++) Assert.Equal("the object store did not answer within 0.05 s", await probes.ObjectStoreAsync());
        var silent = Assert.Single(probes.Lines);
        Assert.Equal((LogLevel.Warning, "Readiness: the object store check failed: the object store did not answer within 0.05 s"), (silent.Level, silent.Message));

        // It answers at last: the run the probes waited on ends healthy, and says so once.
        probes.Store.Answer = Task.CompletedTask;
        release.SetResult();
        probes.Services.GetRequiredService<HealthOptions>().CheckTimeoutSeconds = 60;
        for (var i = 0; i < 3; i++) Assert.Equal(nameof(FailingStore), await probes.ObjectStoreAsync());
        Assert.Equal(["Readiness: the object store check failed: the object store did not answer within 0.05 s", "Readiness: the object store check passes again"],
            probes.Lines.Select(l => l.Message));
    }

    /// <summary>The checks as the services register them, their database at <see cref="ConnectionString"/>; each probe 5 s after the last.</summary>
    private sealed class Probes : IAsyncDisposable
    {
        private readonly CheckLines _lines = new();

        public Probes(string connectionString, double limitSeconds = 60)
        {
            ConnectionString = connectionString;
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Health:CheckTimeoutSeconds"] = limitSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
            }).Build();
            var services = new ServiceCollection()
                .AddSingleton<TimeProvider>(Clock)
                .AddSingleton<IObjectStore>(Store)
                .AddScoped(_ => Context(ConnectionString))
                .AddLogging(logging => logging.AddProvider(_lines).SetMinimumLevel(LogLevel.Debug));
            services.AddClassifierHealthChecks(configuration);
            Services = services.BuildServiceProvider();
        }

        public ManualClock Clock { get; } = new();

        public FailingStore Store { get; } = new();

        public ServiceProvider Services { get; }

        public string ConnectionString { get; set; }

        /// <summary>The checks' own lines at Information and above, in order.</summary>
        public List<(LogLevel Level, string Message, Exception? Exception)> Lines => _lines.Entries;

        public static ClassifierDbContext Context(string connectionString) =>
            new(new DbContextOptionsBuilder<ClassifierDbContext>().UseSqlite(connectionString).UseSnakeCaseNamingConvention().Options);

        public Task<string?> DatabaseAsync() => ProbeAsync(ObservabilityExtensions.DatabaseCheck);

        public Task<string?> ObjectStoreAsync() => ProbeAsync(ObservabilityExtensions.ObjectStoreCheck);

        private async Task<string?> ProbeAsync(string check)
        {
            var report = await Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(r => r.Name == check);
            Clock.Advance(TimeSpan.FromSeconds(5));
            return report.Entries[check].Description;
        }

        public ValueTask DisposeAsync() => Services.DisposeAsync();
    }

    /// <summary>Records what the checks log (their own categories), from Information up.</summary>
    private sealed class CheckLines : ILoggerProvider
    {
        private readonly List<(LogLevel Level, string Message, Exception? Exception)> _entries = [];

        public List<(LogLevel Level, string Message, Exception? Exception)> Entries
        {
            get { lock (_entries) return [.. _entries]; }
        }

        public ILogger CreateLogger(string categoryName) =>
            categoryName.StartsWith(typeof(DatabaseHealthCheck).Namespace!, StringComparison.Ordinal) ? new Lines(this) : Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

        public void Dispose()
        {
        }

        private sealed class Lines(CheckLines owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (!IsEnabled(logLevel)) return;
                lock (owner._entries) owner._entries.Add((logLevel, formatter(state, exception), exception));
            }
        }
    }

    /// <summary>A store whose check fails with <see cref="Failure"/> when set, else awaits <see cref="Answer"/>.</summary>
    private sealed class FailingStore : IObjectStore
    {
        private volatile Exception? _failure;
        private volatile Task _answer = Task.CompletedTask;

        public Exception? Failure
        {
            get => _failure;
            set => _failure = value;
        }

        public Task Answer
        {
            get => _answer;
            set => _answer = value;
        }

        public Task CheckAsync(CancellationToken cancellationToken) => _failure is { } failure ? Task.FromException(failure) : _answer;

        public Task EnsureReadyAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<byte[]?> GetAsync(string key, long maxBytes, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task DeleteAsync(string key, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}
