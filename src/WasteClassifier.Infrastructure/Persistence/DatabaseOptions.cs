using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>Configuration section <c>Database</c>.</summary>
public sealed class DatabaseOptions
{
    public const string Section = "Database";

    /// <summary><c>sqlite</c> (embedded default, a file under the data folder) or <c>postgres</c>.</summary>
    public string Provider { get; set; } = DatabaseProviders.Sqlite;

    /// <summary>Required for postgres; for sqlite defaults to <c>{DataDirectory}/wasteclassifier.db</c>.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Apply pending migrations when a process starts (EF Core serialises concurrent migrators).</summary>
    public bool MigrateOnStartup { get; set; } = true;

    /// <summary>
    /// Postgres connections one process may hold, unless the connection string sets <c>Maximum Pool Size</c> itself.
    /// Npgsql's default of 100 per process exceeds PostgreSQL's default <c>max_connections</c> (100) as soon as one API under
    /// load and a worker are both busy: a cold API answering 96 users at once failed with "too many clients". Requests
    /// beyond the pool wait for a connection (up to the connection string's <c>Timeout</c>, 15 s by default).
    /// </summary>
    public int MaxPoolSize { get; set; } = 30;

    /// <summary>
    /// How long a process on postgres waits for another one's migration (the migration lock) before it fails to start,
    /// naming the holder; 0 waits for ever. A holder that hangs, or a session left behind holding the lock, otherwise kept
    /// every replica waiting at start without failing, so nothing restarted them or showed the problem.
    /// </summary>
    public int MigrationLockTimeoutSeconds { get; set; } = 15 * 60;

    /// <summary>The configuration key of <see cref="MigrationLockTimeoutSeconds"/>.</summary>
    public const string MigrationLockTimeoutSetting = $"{Section}:{nameof(MigrationLockTimeoutSeconds)}";

    /// <summary>The wait <see cref="MigrationLockTimeoutSeconds"/> allows; null for no limit.</summary>
    public TimeSpan? MigrationLockTimeout => MigrationLockTimeoutSeconds > 0 ? TimeSpan.FromSeconds(MigrationLockTimeoutSeconds) : null;

    /// <summary>
    /// Refuses, naming the setting, a provider or connection string nothing could connect with: otherwise the first use of
    /// the database fails with the driver's parse error and a stack trace.
    /// </summary>
    public DatabaseOptions Validated()
    {
        var provider = Provider.ToLowerInvariant();
        if (provider is not (DatabaseProviders.Sqlite or DatabaseProviders.Postgres))
            throw new InvalidOperationException($"{Section}:Provider '{Provider}' is not supported; use sqlite or postgres");
        if (provider == DatabaseProviders.Postgres && string.IsNullOrWhiteSpace(ConnectionString))
            throw new InvalidOperationException($"{Section}:ConnectionString is required when {Section}:Provider is postgres");
        if (MigrationLockTimeoutSeconds < 0)
            throw new InvalidOperationException($"{Section}:MigrationLockTimeoutSeconds must be 0 (wait for ever) or more, not {MigrationLockTimeoutSeconds}");
        if (ConnectionString is null) return this;
        try
        {
            _ = provider == DatabaseProviders.Postgres
                ? new NpgsqlConnectionStringBuilder(ConnectionString)
                : (DbConnectionStringBuilder)new SqliteConnectionStringBuilder(ConnectionString);
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            // The driver's message names the keyword or position; the string itself is not repeated, as it may hold a password.
            throw new InvalidOperationException($"{Section}:ConnectionString is not a valid {provider} connection string: {e.Message}", e);
        }
        return this;
    }
}

public static class DatabaseProviders
{
    public const string Sqlite = "sqlite";
    public const string Postgres = "postgres";
}
