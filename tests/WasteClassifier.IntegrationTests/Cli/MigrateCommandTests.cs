using WasteClassifier.Cli;
using WasteClassifier.Cli.Commands;

namespace WasteClassifier.IntegrationTests.Cli;

// These tests read what the dispatcher writes to the process's stderr, so nothing else may write there meanwhile.
[CollectionDefinition(nameof(ConsoleOutput), DisableParallelization = true)]
public sealed class ConsoleOutput;

/// <summary>
/// <c>wastectl migrate</c> through the dispatcher: bad configuration is a one-line usage error (exit 2), a database that
/// cannot be used a one-line failure (exit 1); neither prints a stack trace.
/// </summary>
[Collection(nameof(ConsoleOutput))]
public sealed class MigrateCommandTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("wastectl-migrate-test").FullName;

    [Theory]
    [InlineData("--provider postgres needs --connection", "--provider", "postgres")]
    [InlineData("Database:ConnectionString is not a valid postgres connection string", "--provider", "postgres", "--connection", "garbage")]
    [InlineData("Database:ConnectionString is not a valid sqlite connection string", "--connection", "Foo=bar")]
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
