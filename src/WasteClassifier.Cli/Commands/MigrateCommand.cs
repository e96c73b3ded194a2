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
        wastectl migrate [--provider sqlite|postgres] [--connection STRING] [--data-directory DIR] [--lock-timeout SECONDS]

          Reads Database__Provider / Database__ConnectionString / DataDirectory from the environment
          like the API and worker; the options override them. Prints the migrations applied.
          On PostgreSQL, waits for another process's migration up to --lock-timeout seconds (default
          Database__MigrationLockTimeoutSeconds, itself 900 by default; 0 waits for ever), then fails
          (exit 1) naming the process that holds the lock.
        """;

    private const string LockTimeoutOption = "--lock-timeout";

    public IReadOnlySet<string> ValueOptions { get; } = new HashSet<string> { "--provider", "--connection", "--data-directory", LockTimeoutOption };

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
            [DatabaseOptions.MigrationLockTimeoutSetting] = LockTimeout(arguments),
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
        // What this run applied, read under the migration lock: not what another process applied meanwhile. The give-up
        // message names what to raise: the option when given, as it overrides the setting.
        var applied = provider.MigrateDatabaseAsync(arguments.Optional(LockTimeoutOption) is null
            ? DatabaseOptions.MigrationLockTimeoutSetting : LockTimeoutOption).GetAwaiter().GetResult();
        Console.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(new { provider = db.Database.ProviderName, applied }));
        return 0;
    }

    /// <summary>--lock-timeout as the setting's value, checked as the setting is (0 or more whole seconds); null when not given.</summary>
    private static string? LockTimeout(CommandArguments arguments) =>
        arguments.Optional(LockTimeoutOption) is null ? null
        : arguments.Int(LockTimeoutOption, fallback: 0, min: 0).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
