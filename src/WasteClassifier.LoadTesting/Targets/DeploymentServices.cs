using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Npgsql;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.LoadTesting.Targets;

/// <summary>
/// The deployment's adapters (database, object store, and the bus in queue mode), configured exactly as the services
/// are (e.g. <c>Database__Provider</c>), with the API's own intake and sender: queue mode writes what the API would.
/// </summary>
public static class DeploymentServices
{
    public static ServiceProvider Build(IConfiguration configuration, bool withBus, Action<ILoggingBuilder>? logging = null) =>
        Collect(configuration, withBus, logging).BuildServiceProvider();

    /// <summary>Longest PostgreSQL connect attempt of a cleanup, in seconds (unless the connection string sets less).</summary>
    public const int CleanupConnectTimeoutSeconds = 3;

    /// <summary>
    /// The database and object store for <c>--cleanup</c>, which must end soon, and say what it left, when PostgreSQL does
    /// not answer: each connect gives up after <see cref="CleanupConnectTimeoutSeconds"/> and a statement is retried
    /// twice, a second apart at most. With the services' policy (15 s connects, five retries up to 5 s apart) each
    /// statement took 2–3.5 minutes to fail.
    /// </summary>
    public static ServiceProvider BuildForCleanup(IConfiguration configuration, Action<ILoggingBuilder>? logging = null)
    {
        var database = configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions();
        var postgres = string.Equals(database.Provider, DatabaseProviders.Postgres, StringComparison.OrdinalIgnoreCase) && database.ConnectionString is not null;
        if (postgres)
        {
            var connection = new NpgsqlConnectionStringBuilder(database.ConnectionString);
            // Timeout=0 is Npgsql's "wait for ever": no less than the cap, but more.
            if (connection.Timeout is <= 0 or > CleanupConnectTimeoutSeconds) connection.Timeout = CleanupConnectTimeoutSeconds;
            configuration = new ConfigurationBuilder().AddConfiguration(configuration)
                .AddInMemoryCollection([KeyValuePair.Create($"{DatabaseOptions.Section}:ConnectionString", (string?)connection.ConnectionString)])
                .Build();
        }
        var services = Collect(configuration, withBus: false, logging);
        // Applied after the services' own options: replaces their retrying strategy.
        if (postgres)
            services.ConfigureDbContext<ClassifierDbContext>(builder => builder.UseNpgsql(npgsql => npgsql.EnableRetryOnFailure(2, TimeSpan.FromSeconds(1), null)));
        return services.BuildServiceProvider();
    }

    private static ServiceCollection Collect(IConfiguration configuration, bool withBus, Action<ILoggingBuilder>? logging)
    {
        var services = new ServiceCollection();
        services.AddSingleton(configuration);
        // Logs go to stderr: the CLI keeps stdout for its JSON summary.
        services.AddLogging(builder => (logging ?? (b => b.AddConsole(o => o.FormatterName = OneLineConsoleFormatter.Name)
            .AddConsoleFormatter<OneLineConsoleFormatter, ConsoleFormatterOptions>()
            .AddFilter("Microsoft.EntityFrameworkCore", LogLevel.Warning)
            .AddFilter("MassTransit", LogLevel.Warning)
            .Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace)))(builder));
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(configuration.GetSection(UploadOptions.Section).Get<UploadOptions>() ?? new UploadOptions());
        services.AddClassifierDatabase(configuration);
        services.AddClassifierObjectStore(configuration);
        services.AddSingleton<SeenContentHashes>();
        services.AddScoped<ImageIntake>();
        if (withBus)
        {
            services.AddClassifierBus(configuration, _ => { });
            services.AddScoped<ClassifyCommandSender>();
        }
        return services;
    }
}
