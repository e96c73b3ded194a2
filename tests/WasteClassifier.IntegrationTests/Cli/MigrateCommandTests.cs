using Npgsql;
using WasteClassifier.Cli;
using WasteClassifier.Cli.Commands;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Cli;

// These tests read what the dispatcher writes to the process's stderr, so nothing else may write there meanwhile.
[CollectionDefinition(nameof(ConsoleOutput), DisableParallelization = true)]
public sealed class ConsoleOutput;

/// <summary>
/// <c>wastectl migrate</c> through the dispatcher: bad configuration is a one-line usage error (exit 2), a database that
/// cannot be used, or another process's migration lock held past the deadline, a one-line failure (exit 1); neither prints
/// a stack trace.
/// </summary>
[Collection(nameof(ConsoleOutput))]
public sealed class MigrateCommandTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("wastectl-migrate-test").FullName;

    [Theory]
    [InlineData("--provider postgres needs --connection", "--provider", "postgres")]
    [InlineData("Database:ConnectionString is not a valid postgres connection string", "--provider", "postgres", "--connection", "garbage")]
    [InlineData("Database:ConnectionString is not a valid sqlite connection string", "--connection", "Foo=bar")]
    [InlineData("--lock-timeout must be an integer ≥ 0", "--lock-timeout", "-1")]
    [InlineData("--lock-timeout must be an integer ≥ 0", "--lock-timeout", "soon")]
    [InlineData("--lock-timeout must be an integer ≥ 0", "--lock-timeout", "1.5")]
    [InlineData("--lock-timeout must be an integer ≥ 0", "--lock-timeout", "99999999999")]
    public void Migrate_BadConfiguration_UsageErrorInOneLine(string expected, params string[] args)
    {
        var (exit, error) = Run(["migrate", "--data-directory", _directory, .. args]);

        Assert.Equal(CommandDispatcher.UsageError, exit);
        Assert.StartsWith($"wastectl: {expected}", error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public void Migrate_FileThatIsNotADatabase_FailsInOneLine()
    {
        File.WriteAllText(Path.Combine(_directory, "wasteclassifier.db"), "this is not an SQLite database, only some text in its place");

        var (exit, error) = Run("migrate", "--data-directory", _directory);

        Assert.Equal(1, exit);
        Assert.Equal("wastectl migrate failed: SQLite Error 26: 'file is not a database'", error.Trim());
    }

    [Fact]
    public void Migrate_PostgresNotListening_FailsInOneLine()
    {
        var (exit, error) = Run("migrate", "--provider", "postgres", "--connection", "Host=127.0.0.1;Port=1;Username=u;Password=p;Database=d");

        Assert.Equal(1, exit);
        Assert.StartsWith("wastectl migrate failed: Failed to connect to 127.0.0.1:1", error);
        Assert.Single(error.Trim().Split('\n'));
    }

    [IntegrationFact]
    public async Task Migrate_LockHeldPastTheTimeout_FailsInOneLineNamingTheHolderAndTheSetting()
    {
        var connectionString = await TestServices.CreateDatabaseAsync("wc_migrate_cli");
        // Read from the environment like the services' settings; this collection runs alone, so no other test sees it.
        var previous = Environment.GetEnvironmentVariable("Database__MigrationLockTimeoutSeconds");
        Environment.SetEnvironmentVariable("Database__MigrationLockTimeoutSeconds", "1");
        try
        {
            // A replica that hangs mid-migration, or a session left behind holding the lock.
            await using var holder = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = "stuck-replica", Pooling = false }.ConnectionString);
            await holder.OpenAsync();
            await using (var take = new NpgsqlCommand($"SELECT pg_advisory_lock({ClusterLocks.Migrations})", holder))
                await take.ExecuteScalarAsync();
            await using (var pid = new NpgsqlCommand("SELECT pg_backend_pid()", holder))
            {
                var holderPid = (int)(await pid.ExecuteScalarAsync())!;

                var (exit, error) = Run("migrate", "--provider", "postgres", "--connection", connectionString);

                Assert.Equal(1, exit);
                // The lines before it are the wait's own log (the holder, every 30 s).
                var failure = Assert.Single(error.Split('\n'), line => line.StartsWith("wastectl migrate failed:", StringComparison.Ordinal));
                // The wait is this process's; of the holder, only what it does now is known (it sits idle holding the lock).
                Assert.StartsWith("wastectl migrate failed: Waited 1 s for the database migration lock; it is held by " +
                                  $"server process {holderPid} (application 'stuck-replica', idle for ", failure);
                Assert.Contains("raise Database:MigrationLockTimeoutSeconds (0 waits for ever)", failure);
                Assert.DoesNotContain("   at ", error);
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable("Database__MigrationLockTimeoutSeconds", previous);
            await TestServices.DropDatabaseAsync(connectionString);
        }
    }

    [Theory]
    [InlineData("0")]
    [InlineData("30")]
    public void Migrate_LockTimeoutOfZeroOrMoreSeconds_Migrates(string seconds)
    {
        var (exit, error) = Run("migrate", "--data-directory", _directory, "--lock-timeout", seconds);

        Assert.True(exit == 0, error);
        Assert.True(File.Exists(Path.Combine(_directory, "wasteclassifier.db")));
    }

    [IntegrationFact]
    public async Task Migrate_LockTimeoutOption_OverridesTheSettingAndIsNamedInTheFailure()
    {
        var connectionString = await TestServices.CreateDatabaseAsync("wc_migrate_cli");
        // A setting the option must override: with it, the run would wait 30 s and name the setting.
        var previous = Environment.GetEnvironmentVariable("Database__MigrationLockTimeoutSeconds");
        Environment.SetEnvironmentVariable("Database__MigrationLockTimeoutSeconds", "30");
        try
        {
            await using var holder = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = "stuck-replica", Pooling = false }.ConnectionString);
            await holder.OpenAsync();
            await using (var take = new NpgsqlCommand($"SELECT pg_advisory_lock({ClusterLocks.Migrations})", holder))
                await take.ExecuteScalarAsync();

            var (exit, error) = Run("migrate", "--provider", "postgres", "--connection", connectionString, "--lock-timeout", "1");

            Assert.Equal(1, exit);
            var failure = Assert.Single(error.Split('\n'), line => line.StartsWith("wastectl migrate failed:", StringComparison.Ordinal));
            Assert.StartsWith("wastectl migrate failed: Waited 1 s for the database migration lock; it is held by server process ", failure);
            Assert.Contains("raise --lock-timeout (0 waits for ever)", failure);
            Assert.DoesNotContain("MigrationLockTimeoutSeconds", failure);
        }
        finally
        {
            Environment.SetEnvironmentVariable("Database__MigrationLockTimeoutSeconds", previous);
            await TestServices.DropDatabaseAsync(connectionString);
        }
    }

    private static (int Exit, string Error) Run(params string[] args)
    {
        var original = Console.Error;
        using var error = new StringWriter();
        Console.SetError(error);
        try
        {
            return (CommandDispatcher.Run([new MigrateCommand()], args), error.ToString());
        }
        finally
        {
            Console.SetError(original);
        }
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
