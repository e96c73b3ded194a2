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
}

public static class DatabaseProviders
{
    public const string Sqlite = "sqlite";
    public const string Postgres = "postgres";
}
