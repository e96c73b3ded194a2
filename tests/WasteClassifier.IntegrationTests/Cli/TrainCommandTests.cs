using WasteClassifier.Cli.Commands;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Training;

namespace WasteClassifier.IntegrationTests.Cli;

/// <summary><c>wastectl train</c> refuses, before training, a version the model registry could not store.</summary>
public sealed class TrainCommandTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("wastectl-train-test").FullName;

    [Theory]
    [InlineData("v 2")]
    [InlineData("../escape")]
    public void Run_VersionTheRegistryRefuses_UsageErrorAndNothingWritten(string version)
    {
        File.WriteAllText(Path.Combine(_directory, DatasetManifest.FileName), "path,label\n");
        var output = Path.Combine(_directory, "model");
        var command = new TrainCommand();
        string[] args = ["--data", _directory, "--out", output, "--version", version];

        var error = Assert.Throws<UsageException>(() => command.Run(new CommandArguments(args, command.ValueOptions, command.FlagOptions)));

        Assert.Contains($"version '{version}'", error.Message);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void DefaultVersion_TwoRunsTheSameDay_DifferAndAreValid()
    {
        var morning = TrainCommand.DefaultVersion("mlp", new DateTime(2026, 11, 28, 9, 30, 5, DateTimeKind.Utc));
        var afternoon = TrainCommand.DefaultVersion("mlp", new DateTime(2026, 11, 28, 15, 2, 0, DateTimeKind.Utc));

        Assert.Equal("resnet18-mlp-20261128093005", morning);
        Assert.NotEqual(morning, afternoon);
        Assert.True(ModelRegistry.IsValidVersion(afternoon));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
