using System.Data.Common;
using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// Replicas that start together on a fresh PostgreSQL database (API, workers and trainer in Compose; five pods in
/// Kubernetes) each migrate it at start. Each one calls <see cref="DatabaseExtensions.MigrateDatabaseAsync"/> once here,
/// without the start-up retry loop, so a replica that applies a migration another already applied, or creates a database
/// another already created, fails the test instead of being retried away.
/// </summary>
public sealed class ConcurrentMigrationsTests
{
    private const int Replicas = 4;
    private const int CreationRounds = 3;

    [IntegrationFact]
    public async Task MigrateDatabaseAsync_ReplicasStartTogetherOnAnEmptyDatabase_NoneFailsAndEachMigrationIsAppliedOnce()
    {
        var connectionString = await TestServices.CreateDatabaseAsync("wc_migrate");
        await DroppedAfterAsync(connectionString, async () =>
        {
            await MigrateTogetherAsync(connectionString);
            await AssertEveryMigrationRecordedOnceAsync(connectionString);
        });
    }

    [IntegrationFact]
    public async Task MigrateDatabaseAsync_ReplicasStartTogetherWithoutTheDatabase_NoneFailsAndEachMigrationIsAppliedOnce()
    {
        // EF Core creates a missing database before it migrates; every replica sees it missing at once. Whether a replica
        // asks to create it before or after another one's CREATE DATABASE commits is timing, so a few rounds.
        var endpoints = await TestServices.GetAsync();
        for (var round = 0; round < CreationRounds; round++)
        {
            var connectionString = new NpgsqlConnectionStringBuilder(endpoints.PostgresConnectionString)
            {
                Database = $"wc_migrate_new_{Guid.NewGuid():N}",
            }.ConnectionString;
            await DroppedAfterAsync(connectionString, async () =>
            {
                await MigrateTogetherAsync(connectionString);
                await AssertEveryMigrationRecordedOnceAsync(connectionString);
            });
        }
    }

    [IntegrationFact]
    public async Task CreateMissingDatabaseAsync_AnotherReplicaCreatesItFirst_TakenAsCreated()
    {
        // The replicas above rarely ask after another one's CREATE DATABASE went through; this one always does.
        var endpoints = await TestServices.GetAsync();
        var connectionString = new NpgsqlConnectionStringBuilder(endpoints.PostgresConnectionString)
        {
            Database = $"wc_migrate_new_{Guid.NewGuid():N}",
        }.ConnectionString;
        await DroppedAfterAsync(connectionString, async () =>
        {
            var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
            DatabaseExtensions.Configure(builder, new DatabaseOptions { Provider = DatabaseProviders.Postgres, ConnectionString = connectionString }, Path.GetTempPath());
            builder.AddInterceptors(new AnotherReplicaCreatesItFirst(endpoints.PostgresConnectionString));
            await using var db = new ClassifierDbContext(builder.Options);

            await DatabaseExtensions.CreateMissingDatabaseAsync(db, CancellationToken.None);

            Assert.True(await db.GetService<IRelationalDatabaseCreator>().ExistsAsync());
        });
    }

    /// <summary>The build was cut short (a timeout, a stopped pod): PostgreSQL keeps the index, marked invalid.</summary>
    [IntegrationFact]
    public Task MigrateDatabaseAsync_ConcurrentIndexBuildCutShort_NextStartRebuildsIt() => IndexBuildLeftBehindAsync(valid: false);

    /// <summary>The build finished, but its process died before the migration was recorded.</summary>
    [IntegrationFact]
    public Task MigrateDatabaseAsync_ConcurrentIndexBuiltButNotRecorded_NextStartRecordsIt() => IndexBuildLeftBehindAsync(valid: true);

    private static async Task IndexBuildLeftBehindAsync(bool valid)
    {
        const string Index = "ix_classifications_predicted_class_created_at_id";
        const string Migration = "20261201015823_ClassificationsPredictedClassIndex";
        var connectionString = await TestServices.CreateDatabaseAsync("wc_migrate");
        await DroppedAfterAsync(connectionString, async () =>
        {
            await using (var provider = ReplicaServices(connectionString, 0)) await provider.MigrateDatabaseAsync();
            await ExecuteAsync(connectionString, $"DELETE FROM \"__EFMigrationsHistory\" WHERE migration_id = '{Migration}'");
            if (!valid) await ExecuteAsync(connectionString, $"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{Index}'::regclass");

            await using (var provider = ReplicaServices(connectionString, 1))
                Assert.Equal([Migration], await provider.MigrateDatabaseAsync());

            await AssertEveryMigrationRecordedOnceAsync(connectionString);
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var check = new NpgsqlCommand($"SELECT indisvalid FROM pg_index WHERE indexrelid = '{Index}'::regclass", connection);
            Assert.True((bool)(await check.ExecuteScalarAsync())!);
        });
    }

    /// <summary>
    /// A replica died while building the index, and its build still runs on the server, waiting for an old snapshot:
    /// the next start must not drop that invalid index (its exclusive lock would queue every query on the table behind
    /// the build), but fail and try again once the build is over.
    /// </summary>
    [IntegrationFact]
    public async Task MigrateDatabaseAsync_IndexBuildStillRunning_FailsWithoutBlockingTheTableThenCompletesOnceItEnds()
    {
        const string Index = "ix_classifications_predicted_class_created_at_id";
        var connectionString = await TestServices.CreateDatabaseAsync("wc_migrate");
        await DroppedAfterAsync(connectionString, async () =>
        {
            await using (var provider = ReplicaServices(connectionString, 0)) await provider.MigrateDatabaseAsync();
            await ExecuteAsync(connectionString, $"DELETE FROM \"__EFMigrationsHistory\" WHERE migration_id = '20261201015823_ClassificationsPredictedClassIndex'; DROP INDEX {Index}");

            // An old snapshot, which a concurrent build waits for before it marks the index valid.
            await using var reader = new NpgsqlConnection(connectionString);
            await reader.OpenAsync();
            await using var snapshot = await reader.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead);
            await new NpgsqlCommand("SELECT txid_current()", reader, snapshot).ExecuteScalarAsync();
            await using var builder = new NpgsqlConnection(connectionString);
            await builder.OpenAsync();
            var build = new NpgsqlCommand($"CREATE INDEX CONCURRENTLY {Index} ON classifications (predicted_class, created_at, id) WHERE predicted_class IS NOT NULL",
                builder)
            { CommandTimeout = 120 }.ExecuteNonQueryAsync();
            await WaitUntilAsync(connectionString, $"SELECT count(*) FROM pg_stat_progress_create_index p JOIN pg_class c ON c.oid = p.index_relid WHERE c.relname = '{Index}'");

            await using (var provider = ReplicaServices(connectionString, 1))
            {
                var error = await Assert.ThrowsAsync<PostgresException>(() => provider.MigrateDatabaseAsync().WaitAsync(TimeSpan.FromSeconds(60)));
                Assert.Contains("still running", error.MessageText);
            }
            // The table still answers: nothing queued an exclusive lock behind the build.
            await ExecuteAsync(connectionString, "SET statement_timeout = '5s'; SELECT count(*) FROM classifications");

            await snapshot.CommitAsync();
            await build.WaitAsync(TimeSpan.FromSeconds(60));
            await using (var provider = ReplicaServices(connectionString, 2)) await provider.MigrateDatabaseAsync();
            await AssertEveryMigrationRecordedOnceAsync(connectionString);
        });
    }

    [IntegrationFact]
    public async Task MigrateDatabaseAsync_AnotherProcessHoldsTheLock_WaitsNamingItThenMigrates()
    {
        var connectionString = await TestServices.CreateDatabaseAsync("wc_migrate");
        var otherDatabase = await TestServices.CreateDatabaseAsync("wc_migrate");
        await DroppedAfterAsync(otherDatabase, () => DroppedAfterAsync(connectionString, async () =>
        {
            // Another deployment's database, migrating at the same time under the same lock key: not the one to name.
            await using var elsewhere = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(otherDatabase) { ApplicationName = "another-database", Pooling = false }.ConnectionString);
            await elsewhere.OpenAsync();
            await new NpgsqlCommand($"SELECT pg_advisory_lock({ClusterLocks.Migrations})", elsewhere).ExecuteScalarAsync();
            await using var holder = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = "migrating-replica", Pooling = false }.ConnectionString);
            await holder.OpenAsync();
            await new NpgsqlCommand($"SELECT pg_advisory_lock({ClusterLocks.Migrations})", holder).ExecuteScalarAsync();
            var log = new LogLines();
            await using var provider = ReplicaServices(connectionString, 1, log);

            var migrating = provider.MigrateDatabaseAsync();
            // Generous: the first report comes at the first refused try, but a CI machine running the other tests'
            // processes on its two cores has stalled for seconds. A migration that failed instead says why.
            for (var waited = Stopwatch.StartNew(); !log.Lines.Any(l => l.Contains("Another process is migrating")); await Task.Delay(50))
            {
                if (migrating.IsFaulted) await migrating;
                Assert.True(waited.Elapsed < TimeSpan.FromSeconds(60), $"no report of the wait; the log: {string.Join(" | ", log.Lines)}");
            }
            Assert.False(migrating.IsCompleted);
            var report = log.Lines.First(l => l.Contains("Another process is migrating"));
            Assert.Contains("migrating-replica", report);

            await holder.CloseAsync();
            await migrating.WaitAsync(TimeSpan.FromMinutes(1));
            await AssertEveryMigrationRecordedOnceAsync(connectionString);
        }));
    }

    [IntegrationFact]
    public async Task MigrateDatabaseAsync_LockHeldPastTheTimeout_FailsNamingTheHolderAndTheSettingThenMigratesOnceReleased()
    {
        var connectionString = await TestServices.CreateDatabaseAsync("wc_migrate");
        await DroppedAfterAsync(connectionString, async () =>
        {
            // A replica that hangs mid-migration, or a session left behind holding the lock.
            await using var holder = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = "stuck-replica", Pooling = false }.ConnectionString);
            await holder.OpenAsync();
            await new NpgsqlCommand($"SELECT pg_advisory_lock({ClusterLocks.Migrations})", holder).ExecuteScalarAsync();

            await using (var provider = ReplicaServices(connectionString, 1, lockTimeoutSeconds: 1))
            {
                var waited = Stopwatch.StartNew();
                // Without a deadline it would wait for ever: the 30 s cut-off is only the test's.
                var error = await Assert.ThrowsAsync<MigrationLockTimeoutException>(() => provider.MigrateDatabaseAsync().WaitAsync(TimeSpan.FromSeconds(30)));
                Assert.InRange(waited.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
                Assert.Contains("stuck-replica", error.Message);
                Assert.Contains("Database:MigrationLockTimeoutSeconds", error.Message);
            }
            await using (var check = new NpgsqlCommand("SELECT to_regclass('\"__EFMigrationsHistory\"') IS NULL", holder))
                Assert.True((bool)(await check.ExecuteScalarAsync())!, "a migration ran without the lock");

            await holder.CloseAsync();
            await using (var provider = ReplicaServices(connectionString, 2, lockTimeoutSeconds: 1))
                await provider.MigrateDatabaseAsync().WaitAsync(TimeSpan.FromMinutes(1));
            await AssertEveryMigrationRecordedOnceAsync(connectionString);
        });
    }

    [IntegrationFact]
    public async Task PrepareInfrastructureAsync_LockHeldPastTheTimeout_FailsAtOnceWithoutRetrying()
    {
        var connectionString = await TestServices.CreateDatabaseAsync("wc_migrate");
        await DroppedAfterAsync(connectionString, async () =>
        {
            await using var holder = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = "stuck-replica", Pooling = false }.ConnectionString);
            await holder.OpenAsync();
            await using (var take = new NpgsqlCommand($"SELECT pg_advisory_lock({ClusterLocks.Migrations})", holder))
                await take.ExecuteScalarAsync();
            var log = new LogLines();
            await using var provider = ReplicaServices(connectionString, 1, log, lockTimeoutSeconds: 1);

            // Start-up retries what fails within its patience, as a server still coming up; a retried lock wait would start
            // its deadline over, so the process would wait the patience out, not the setting.
            await Assert.ThrowsAsync<MigrationLockTimeoutException>(() =>
                provider.PrepareInfrastructureAsync(patience: TimeSpan.FromSeconds(20)).WaitAsync(TimeSpan.FromMinutes(1)));

            Assert.DoesNotContain(log.Lines, line => line.Contains("not ready", StringComparison.Ordinal));
            // One wait: each one logs the holder as it starts.
            Assert.Single(log.Lines, line => line.StartsWith("Another process is migrating the database (server process", StringComparison.Ordinal));
        });
    }

    private sealed class LogLines : ILoggerProvider, ILogger
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<string> _lines = new();

        public IReadOnlyList<string> Lines => [.. _lines];

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            _lines.Enqueue(formatter(state, exception));

        public void Dispose()
        {
        }
    }

    private static async Task WaitUntilAsync(string connectionString, string countQuery)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(countQuery, connection);
        for (var tries = 0; (long)(await command.ExecuteScalarAsync())! == 0; tries++)
        {
            Assert.True(tries < 200, $"never true: {countQuery}");
            await Task.Delay(50);
        }
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Runs a test on a database and drops it afterwards, whatever the test did.</summary>
    private static async Task DroppedAfterAsync(string connectionString, Func<Task> test)
    {
        try
        {
            await test();
        }
        finally
        {
            await TestServices.DropDatabaseAsync(connectionString);
        }
    }

    /// <summary>Runs EF Core's CREATE DATABASE on a connection of its own just before EF Core does, as a replica that got there first.</summary>
    private sealed class AnotherReplicaCreatesItFirst(string serverConnectionString) : DbCommandInterceptor
    {
        public override async ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<int> result, CancellationToken cancellationToken = default)
        {
            if (command.CommandText.StartsWith("CREATE DATABASE", StringComparison.Ordinal))
            {
                await using var connection = new NpgsqlConnection(serverConnectionString);
                await connection.OpenAsync(cancellationToken);
                await using var create = new NpgsqlCommand(command.CommandText, connection);
                await create.ExecuteNonQueryAsync(cancellationToken);
            }
            return result;
        }
    }

    /// <summary>Runs one migration per replica, each with its own service provider and connection pool, released together.</summary>
    private static async Task MigrateTogetherAsync(string connectionString)
    {
        var providers = Enumerable.Range(0, Replicas).Select(replica => ReplicaServices(connectionString, replica)).ToList();
        try
        {
            var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var replicas = providers.Select(provider => Task.Run(async () =>
            {
                await go.Task;
                await provider.MigrateDatabaseAsync();
            })).ToList();
            go.SetResult();
            var all = Task.WhenAll(replicas);
            try
            {
                await all.WaitAsync(TimeSpan.FromMinutes(2));
            }
            catch
            {
                // Every replica's failure, not only the first one's.
                if (all.Exception is { } failures) throw failures;
                throw;
            }
        }
        finally
        {
            foreach (var provider in providers) await provider.DisposeAsync();
        }
    }

    private static ServiceProvider ReplicaServices(string connectionString, int replica, ILoggerProvider? log = null, int? lockTimeoutSeconds = null)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Database:Provider"] = DatabaseProviders.Postgres,
            // Its own pool, as a separate process would have.
            ["Database:ConnectionString"] = new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = $"replica-{replica}" }.ConnectionString,
            ["Database:MigrationLockTimeoutSeconds"] = lockTimeoutSeconds?.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["DataDirectory"] = Path.GetTempPath(),
        }).Build();
        var services = new ServiceCollection();
        services.AddLogging(logging =>
        {
            if (log is not null) logging.AddProvider(log);
        });
        services.AddClassifierDatabase(configuration);
        return services.BuildServiceProvider();
    }

    private static async Task AssertEveryMigrationRecordedOnceAsync(string connectionString)
    {
        var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
        DatabaseExtensions.Configure(builder, new DatabaseOptions { Provider = DatabaseProviders.Postgres, ConnectionString = connectionString }, Path.GetTempPath());
        await using var db = new ClassifierDbContext(builder.Options);
        Assert.Empty(await db.Database.GetPendingMigrationsAsync());
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT migration_id FROM \"__EFMigrationsHistory\" ORDER BY 1", connection);
        var recorded = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
            while (await reader.ReadAsync()) recorded.Add(reader.GetString(0));
        Assert.Equal(db.Database.GetMigrations().Order(StringComparer.Ordinal), recorded);
    }
}
