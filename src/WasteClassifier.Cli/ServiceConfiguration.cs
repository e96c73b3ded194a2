using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

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
            .Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
        return services;
    }
}
