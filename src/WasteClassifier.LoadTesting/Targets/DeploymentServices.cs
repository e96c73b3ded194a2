using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
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
    public static ServiceProvider Build(IConfiguration configuration, bool withBus, Action<ILoggingBuilder>? logging = null)
    {
        var services = new ServiceCollection();
        services.AddSingleton(configuration);
        // Logs go to stderr: the CLI keeps stdout for its JSON summary.
        services.AddLogging(builder => (logging ?? (b => b.AddSimpleConsole(o => o.SingleLine = true)
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
        return services.BuildServiceProvider();
    }
}
