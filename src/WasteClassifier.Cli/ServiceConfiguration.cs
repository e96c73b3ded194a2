using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WasteClassifier.Cli.Commands;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Cli;

/// <summary>
/// The services' configuration for verbs that talk to the deployment (database, object store, broker):
/// the same environment variables as the API and worker (e.g. <c>Database__Provider</c>), overridden by options.
/// </summary>
internal static class ServiceConfiguration
{
    public static IConfiguration Build(IReadOnlyDictionary<string, string?> overrides) =>
        new ConfigurationBuilder()
            .AddEnvironmentVariables()
            .AddInMemoryCollection(overrides.Where(o => o.Value is not null))
            .Build();

    /// <summary>A service provider with logging to stderr (stdout is kept for machine-readable output).</summary>
    public static ServiceCollection Services(IConfiguration configuration)
    {
        var services = new ServiceCollection();
        services.AddSingleton(configuration);
        services.AddLogging(logging => logging.AddSimpleConsole(o => o.SingleLine = true)
            .AddFilter("Microsoft.EntityFrameworkCore", LogLevel.Warning)
            // EF logs its probe of a missing migrations-history table as an error on every fresh database.
            .AddFilter("Microsoft.EntityFrameworkCore.Database.Command", LogLevel.None)
            // A connection that fails is the verb's failure: the dispatcher reports it in one line, not as a log entry too.
            .AddFilter("Microsoft.EntityFrameworkCore.Database.Connection", LogLevel.None)
            .Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
        return services;
    }

    /// <summary>The database settings as a usage error naming the one that is wrong, before anything connects.</summary>
    public static void CheckDatabase(IConfiguration configuration)
    {
        try
        {
            (configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions()).Validated();
        }
        catch (InvalidOperationException e)
        {
            // Also a value that does not bind (e.g. Database__MaxPoolSize=many).
            throw new UsageException(e.Message);
        }
    }

    /// <summary>
    /// The embedded default's SQLite file when the configuration points at one that does not exist (the embedded default
    /// keeps it under its own DataDirectory). Null for PostgreSQL, an explicit connection string, or a file that is there.
    /// </summary>
    public static string? MissingEmbeddedDatabase(IConfiguration configuration)
    {
        var database = configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions();
        if (!string.Equals(database.Provider, DatabaseProviders.Sqlite, StringComparison.OrdinalIgnoreCase) || database.ConnectionString is not null) return null;
        var file = Path.Combine(ServiceOptions.From(configuration).ResolvedDataDirectory, DatabaseExtensions.SqliteFileName);
        return File.Exists(file) ? null : file;
    }

    /// <summary>
    /// For verbs that change a deployment's data (not <c>migrate</c>, which creates it): opening the embedded default
    /// where no database is would create and migrate a new, empty one that the running API never reads.
    /// </summary>
    public static void RequireExistingDatabase(IConfiguration configuration)
    {
        CheckDatabase(configuration);
        if (MissingEmbeddedDatabase(configuration) is { } file)
            throw new UsageException($"no database at {file}: set --data-directory (or DataDirectory) to the deployment's data folder " +
                                     "(`dotnet run --project src/WasteClassifier.Api` keeps it in src/WasteClassifier.Api/data) or Database__* as the API's");
    }
}
