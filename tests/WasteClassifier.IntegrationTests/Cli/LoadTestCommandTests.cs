using WasteClassifier.Cli.Commands;

namespace WasteClassifier.IntegrationTests.Cli;

/// <summary><c>wastectl loadtest</c> refuses what it cannot send as asked before it sends anything.</summary>
public sealed class LoadTestCommandTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("wastectl-loadtest-test").FullName;

    [Fact]
    public void Run_ImageThatCannotBeMadeUnique_RefusedWithTheFileAndTheWayOut()
    {
        File.WriteAllBytes(Path.Combine(_directory, "not-really.jpg"), "GIF89a-not-a-jpeg"u8.ToArray());
        var command = new LoadTestCommand();
        string[] args = ["--target", "http://127.0.0.1:1", "--users", "1", "--duration", "1", "--images", _directory, "--out", Path.Combine(_directory, "out")];

        var error = Assert.Throws<UsageException>(() => command.Run(new CommandArguments(args, command.ValueOptions, command.FlagOptions)));

        Assert.Contains("not-really.jpg", error.Message);
        Assert.Contains("--repeat-images", error.Message);
        Assert.False(Directory.Exists(Path.Combine(_directory, "out")));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
