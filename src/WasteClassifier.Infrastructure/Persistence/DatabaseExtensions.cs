using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using WasteClassifier.Infrastructure.Hosting;

namespace WasteClassifier.Infrastructure.Persistence;

public static class DatabaseExtensions
{
    // Each provider has its own migrations assembly under the top-level migrations/ folder.
    public const string PostgresMigrationsAssembly = "WasteClassifier.Migrations.Postgres";
    public const string SqliteMigrationsAssembly = "WasteClassifier.Migrations.Sqlite";

    /// <summary>The embedded default's database file, under DataDirectory.</summary>
    public const string SqliteFileName = "wasteclassifier.db";

    public static IServiceCollection AddClassifierDatabase(this IServiceCollection services, IConfiguration configuration)
    {
        // Checked here, not at the first query: startup retries what fails there, as if a server were still coming up.
        var options = (configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions()).Validated();
        var dataDirectory = ServiceOptions.From(configuration).ResolvedDataDirectory;
        services.AddSingleton(options);
        // Pooled: a request takes a reset context instead of building one and its internal services (measured: EF Core was
        // over half of the API's CPU under load, context construction and service resolution a visible part of it).
        services.AddDbContextPool<ClassifierDbContext>(builder => Configure(builder, options, dataDirectory));
        return services;
    }

    /// <summary>
    /// The connection string a service connects with: <paramref name="maxPoolSize"/> connections at most, statements
    /// prepared once per connection, and no state reset when a connection goes back to the pool. Whatever the given string
    /// sets itself is kept.
    /// </summary>
    /// <remarks>
    /// Measured under saturation load (2 cores): PostgreSQL spent 4.4 CPU ms per image before and 2.2 after. Every request
    /// opens and closes a pooled connection several times; each close queued a <c>DISCARD ALL</c> (6 per image), and every
    /// statement was parsed and planned again. The services keep no session state (no SET, temporary tables or advisory
    /// locks) that a reset would have to clear; the migration lock's session is not pooled.
    /// </remarks>
    public static string ForService(string connectionString, int maxPoolSize)
    {
        var builder = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        var given = connectionString.Split(';').Select(part => part.Split('=')[0].Replace(" ", "", StringComparison.Ordinal).ToLowerInvariant()).ToHashSet();
        if (!given.Overlaps(["maximumpoolsize", "maxpoolsize"]) && maxPoolSize > 0) builder.MaxPoolSize = maxPoolSize;
        if (!given.Contains("noresetonclose")) builder.NoResetOnClose = true;
        if (!given.Contains("maxautoprepare")) builder.MaxAutoPrepare = 32;
        if (!given.Contains("autoprepareminusages")) builder.AutoPrepareMinUsages = 2;
        return builder.ConnectionString;
    }

    public static void Configure(DbContextOptionsBuilder builder, DatabaseOptions options, string dataDirectory)
    {
        switch (options.Validated().Provider.ToLowerInvariant())
        {
            case DatabaseProviders.Postgres:
                var connectionString = ForService(options.ConnectionString!, options.MaxPoolSize);
                builder.UseNpgsql(connectionString, npgsql => npgsql
                    .MigrationsAssembly(PostgresMigrationsAssembly)
                    .EnableRetryOnFailure(maxRetryCount: 5, maxRetryDelay: TimeSpan.FromSeconds(5), errorCodesToAdd: null));
                break;
            case DatabaseProviders.Sqlite:
                Directory.CreateDirectory(dataDirectory);
                builder.UseSqlite(options.ConnectionString ?? $"Data Source={Path.Combine(dataDirectory, SqliteFileName)};Default Timeout=30",
                    sqlite => sqlite.MigrationsAssembly(SqliteMigrationsAssembly));
                break;
            default:
                throw new InvalidOperationException($"Database:Provider '{options.Provider}' is not supported; use sqlite or postgres");
        }
        builder.UseSnakeCaseNamingConvention();
    }

    /// <summary>How often a replica asks again for the migration lock while another one migrates.</summary>
    private static readonly TimeSpan MigrationLockPoll = TimeSpan.FromMilliseconds(250);

    /// <summary>How long one migration statement may run.</summary>
    public static readonly TimeSpan MigrationCommandTimeout = TimeSpan.FromHours(1);

    /// <summary>
    /// Applies pending migrations and returns those this call applied; API, worker and CLI call this at start when
    /// MigrateOnStartup is set. On PostgreSQL, replicas that start together create a missing database once and migrate
    /// one at a time.
    /// </summary>
    /// <remarks>
    /// EF Core's own lock does not serialise them on PostgreSQL: Npgsql's is <c>LOCK TABLE "__EFMigrationsHistory"</c>,
    /// held until a transaction ends, and EF Core 10 commits each migration in its own transaction (none around a
    /// CREATE INDEX CONCURRENTLY), while it reads which migrations are pending once, at the start. A replica that waited
    /// for the lock took it between two migrations of another and applied the next one; the other then applied it again
    /// (42701 "already exists"). So one session-level advisory lock is held around the whole MigrateAsync instead.
    /// </remarks>
    /// <param name="lockTimeoutName">What the give-up message tells to raise: the setting, or what overrides it (wastectl's option).</param>
    public static async Task<IReadOnlyList<string>> MigrateDatabaseAsync(this IServiceProvider services,
        string lockTimeoutName = DatabaseOptions.MigrationLockTimeoutSetting, CancellationToken cancellationToken = default)
    {
        using var scope = services.CreateScope();
        var options = scope.ServiceProvider.GetRequiredService<DatabaseOptions>();
        if (!options.MigrateOnStartup) return [];
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var logger = scope.ServiceProvider.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(DatabaseExtensions));
        NpgsqlConnection? migrationLock = null;
        if (db.Database.IsNpgsql()) migrationLock = await TakeMigrationLockAsync(db, logger, options.MigrationLockTimeout, lockTimeoutName, cancellationToken);
        try
        {
            // Read under the lock: what another replica applied meanwhile is no longer pending.
            var pending = (await db.Database.GetPendingMigrationsAsync(cancellationToken)).ToList();
            if (pending.Count > 0) logger.LogInformation("Applying {Count} migration(s): {Migrations}", pending.Count, pending);
            // Not the 30 s a request gets: an index build on a large table takes minutes, and one cut short is left invalid.
            db.Database.SetCommandTimeout(MigrationCommandTimeout);
            await db.Database.MigrateAsync(cancellationToken);
            if (db.Database.IsSqlite())
            {
                // Write-ahead logging lets the embedded API read while the in-process worker writes.
                await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken);
            }
            return pending;
        }
        finally
        {
            // Closing the unpooled session releases the lock, whether or not the migration went through.
            if (migrationLock is not null) await migrationLock.DisposeAsync();
        }
    }

    /// <summary>
    /// Creates the PostgreSQL database, found missing, as <see cref="MigrateDatabaseAsync"/> does before it migrates (EF
    /// Core's MigrateAsync would, but replicas starting together all see it missing, and those that asked after another
    /// one's CREATE DATABASE went through failed with 42P04). The migration lock cannot cover this: it lives in the database.
    /// </summary>
    public static async Task CreateMissingDatabaseAsync(ClassifierDbContext db, CancellationToken cancellationToken)
    {
        try
        {
            await db.GetService<IRelationalDatabaseCreator>().CreateAsync(cancellationToken);
        }
        // Another replica created it first (Npgsql already ignores 23505, when both created it at once).
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DuplicateDatabase)
        {
        }
    }

    /// <summary>
    /// Takes <see cref="ClusterLocks.Migrations"/> on a session of its own and returns that session's connection; disposing
    /// it releases the lock.
    /// </summary>
    /// <remarks>
    /// Unpooled, so that closing the connection ends the session and its lock whatever happened (pooled connections are not
    /// reset, see <see cref="ForService"/>), and outside any transaction, so the migration's own transactions and CREATE
    /// INDEX CONCURRENTLY run as before. Polled with pg_try_advisory_lock rather than waited for with pg_advisory_lock: a
    /// statement blocked in the lock holds a snapshot, and CREATE INDEX CONCURRENTLY in the holder's migration waits for
    /// every older snapshot in the database. PostgreSQL broke that deadlock by cancelling the build, which left an invalid
    /// index behind, and every replica then failed with 42P07 (tried with four).
    /// </remarks>
    /// <exception cref="MigrationLockTimeoutException">Another session still held the lock after <paramref name="timeout"/>.</exception>
    private static async Task<NpgsqlConnection> TakeMigrationLockAsync(ClassifierDbContext db, ILogger logger, TimeSpan? timeout, string timeoutName,
        CancellationToken cancellationToken)
    {
        // Keepalives, so that a firewall's idle timeout does not end the session (and the lock) while it waits out a long
        // migration; the server's own idle_session_timeout is turned off for it below.
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(db.Database.GetConnectionString()) { Pooling = false, KeepAlive = 30 }.ConnectionString);
        try
        {
            try
            {
                // A server that cannot be reached fails here, at once, with its own message.
                await connection.OpenAsync(cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InvalidCatalogName)
            {
                await CreateMissingDatabaseAsync(db, cancellationToken);
                await connection.OpenAsync(cancellationToken);
            }
            if (connection.PostgreSqlVersion.Major >= 14)
                await using (var noIdleTimeout = new NpgsqlCommand("SET idle_session_timeout = 0", connection))
                    await noIdleTimeout.ExecuteNonQueryAsync(cancellationToken);
            await using var command = new NpgsqlCommand($"SELECT pg_try_advisory_lock({ClusterLocks.Migrations})", connection);
            var waitingSince = Stopwatch.StartNew();
            var nextReport = TimeSpan.Zero;
            while (!(bool)(await command.ExecuteScalarAsync(cancellationToken))!)
            {
                // Failing, rather than waiting on, lets the orchestrator restart the process and show it: a holder that
                // hangs, or a session left holding the lock, kept every replica waiting at start without a word of error.
                if (timeout is { } limit && waitingSince.Elapsed >= limit)
                {
                    await TakeFreedLockOrGiveUpAsync(limit, timeoutName, () => MigrationLockHolderAsync(connection, cancellationToken),
                        async () => (bool)(await command.ExecuteScalarAsync(cancellationToken))!);
                    break;
                }
                if (waitingSince.Elapsed >= nextReport)
                {
                    logger.LogInformation("Another process is migrating the database ({Holder}); waiting {Seconds:F0} s so far",
                        await MigrationLockHolderAsync(connection, cancellationToken) ?? "it has just finished", waitingSince.Elapsed.TotalSeconds);
                    nextReport += TimeSpan.FromSeconds(30);
                }
                await Task.Delay(MigrationLockPoll, cancellationToken);
            }
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// At the deadline: reads who holds the lock and gives up naming them, or, when no one does (the holder let go after the
    /// last try), tries once more rather than give up on a free lock. Returns when that try took it.
    /// </summary>
    /// <exception cref="MigrationLockTimeoutException">Someone holds the lock, or took it before the last try.</exception>
    /// <param name="timeoutName">The setting or option that set <paramref name="waited"/>, which the message tells to raise.</param>
    internal static async Task TakeFreedLockOrGiveUpAsync(TimeSpan waited, string timeoutName, Func<Task<string?>> holderAsync, Func<Task<bool>> tryLockAsync)
    {
        var holder = await holderAsync();
        if (holder is null && await tryLockAsync()) return;
        // The wait is this process's own: several holders may have taken turns during it.
        throw new MigrationLockTimeoutException(
            $"Waited {waited.TotalSeconds:0} s for the database migration lock; it is held by " +
            $"{holder ?? "another process, which took it as the last holder let go"}; gave up waiting. If its migration is still " +
            $"running, raise {timeoutName} (0 waits for ever); if that process is " +
            "gone, end its session with pg_terminate_backend(its server process).");
    }

    /// <summary>
    /// Who holds the migration lock, for the log of a replica waiting for it: its server process, application and how long
    /// its latest query has run (not how long it has held the lock, which PostgreSQL does not keep); null when no one does.
    /// </summary>
    private static async Task<string?> MigrationLockHolderAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        // A bigint advisory key is kept as its high and low halves (classid, objid), with objsubid 1.
        await using var command = new NpgsqlCommand("""
            SELECT format('server process %s (%s, %s)', a.pid,
                          coalesce('application ' || quote_literal(nullif(a.application_name, '')), 'no application name'),
                          -- PostgreSQL keeps no time the lock was taken: say what the holder does now, and since when.
                          CASE WHEN a.state = 'active' THEN format('its current query running for %s s', round(extract(epoch FROM now() - a.query_start)))
                               ELSE format('%s for %s s', coalesce(a.state, 'state unknown'), round(extract(epoch FROM now() - coalesce(a.state_change, a.backend_start))))
                          END)
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
              AND ((l.classid::bigint << 32) | l.objid::bigint) = @key
              -- Advisory locks belong to a database: another database's migration holds the same key (pg_locks lists all).
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            LIMIT 1
            """, connection);
        command.Parameters.AddWithValue("key", ClusterLocks.Migrations);
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }
}

/// <summary>
/// Another process held the migration lock for longer than <see cref="DatabaseOptions.MigrationLockTimeoutSeconds"/>: start-up
/// fails (and is not retried) rather than waiting on.
/// </summary>
public sealed class MigrationLockTimeoutException(string message) : TimeoutException(message);
