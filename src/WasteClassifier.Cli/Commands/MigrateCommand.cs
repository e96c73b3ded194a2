using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Cli.Commands;

/// <summary>Applies pending database migrations, as the services do at start (for deployments that turn that off).</summary>
public sealed class MigrateCommand : ICommand
{
    public string Name => "migrate";

    public string Summary => "apply pending database migrations (configuration as for the services)";

    public string Usage => """
        wastectl migrate [--provider sqlite|postgres] [--connection STRING] [--data-directory DIR]

          Reads Database__Provider / Database__ConnectionString / DataDirectory from the environment
          like the API and worker; the options override them. Prints the migrations applied.
          On PostgreSQL, waits for another process's migration up to Database__MigrationLockTimeoutSeconds
          (default 900; 0 waits for ever), then fails (exit 1) naming the process that holds the lock.
        """;

    public IReadOnlySet<string> ValueOptions { get; } = new HashSet<string> { "--provider", "--connection", "--data-directory" };

    public IReadOnlySet<string> FlagOptions { get; } = new HashSet<string>();

    public int Run(CommandArguments arguments)
    {
        if (arguments.Optional("--provider") is { } given && given is not (DatabaseProviders.Sqlite or DatabaseProviders.Postgres))
            throw new UsageException($"--provider must be {DatabaseProviders.Sqlite} or {DatabaseProviders.Postgres}, not '{given}'");
        var configuration = ServiceConfiguration.Build(new Dictionary<string, string?>
        {
            ["Database:Provider"] = arguments.Optional("--provider"),
            ["Database:ConnectionString"] = arguments.Optional("--connection"),
            ["DataDirectory"] = arguments.Optional("--data-directory"),
            ["Database:MigrateOnStartup"] = "true",
        });
        if (string.Equals(configuration["Database:Provider"], DatabaseProviders.Postgres, StringComparison.OrdinalIgnoreCase)
            && string.IsNullOrWhiteSpace(configuration["Database:ConnectionString"]))
            throw new UsageException("--provider postgres needs --connection STRING (or Database__ConnectionString)");
        ServiceConfiguration.CheckDatabase(configuration);
        var services = ServiceConfiguration.Services(configuration);
        services.AddClassifierDatabase(configuration);
        using var provider = services.BuildServiceProvider();
        using var scope = provider.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        // What this run applied, read under the migration lock: not what another process applied meanwhile.
        var applied = provider.MigrateDatabaseAsync().GetAwaiter().GetResult();
        Console.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(new { provider = db.Database.ProviderName, applied }));
        return 0;
    }
}
