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
}

public static class DatabaseProviders
{
    public const string Sqlite = "sqlite";
    public const string Postgres = "postgres";
}
