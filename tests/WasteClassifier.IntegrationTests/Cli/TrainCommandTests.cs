using System.Security.Cryptography;
using WasteClassifier.Cli.Commands;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Inference;
using WasteClassifier.Core.Training;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Cli;

/// <summary><c>wastectl train</c> refuses, before training, a version the model registry could not store, and fails a run it could not score.</summary>
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
    public void Run_DatasetWithNoHoldOutImage_WritesTheModelButExitsNonZero()
    {
        // Three images over two labels, none in the hold-out: it exited 0 after "accuracy 0.00 %, macro-F1 0.0000 over 0 image(s)".
        var images = Enumerable.Range(0, 40).Select(i => SyntheticVegetation.Jpeg(i)).Where(jpeg => !HoldOutSplit.IsHoldOut(SHA256.HashData(jpeg))).Take(3).ToList();
        string[] labels = ["vegetation", "vegetation", "glass"];
        for (var i = 0; i < images.Count; i++) File.WriteAllBytes(Path.Combine(_directory, $"{i}.jpg"), images[i]);
        File.WriteAllText(Path.Combine(_directory, DatasetManifest.FileName), "path,label\n" + string.Concat(labels.Select((label, i) => $"{i}.jpg,{label}\n")));
        var output = Path.Combine(_directory, "model");
        var command = new TrainCommand();
        string[] args = ["--data", _directory, "--out", output, "--cache", Path.Combine(_directory, "cache"), "--epochs", "2", "--augment", "none", "--threads", "1"];

        var code = command.Run(new CommandArguments(args, command.ValueOptions, command.FlagOptions));

        Assert.Equal(1, code);
        Assert.True(File.Exists(Path.Combine(output, "card.json")));
    }

    [Fact]
    public void Run_WritesTheFingerprintOfTheImagesAndLabelsItTrainedOn()
    {
        // Three training-side images and one of the hold-out, which is not trained on so not in the fingerprint. Cards of
        // wastectl train had none, so a job on the same data as such a model was judged by the images per label alone.
        var jpegs = Enumerable.Range(0, 40).Select(i => SyntheticVegetation.Jpeg(i)).ToList();
        var training = jpegs.Where(jpeg => !HoldOutSplit.IsHoldOut(SHA256.HashData(jpeg))).Take(3).ToList();
        var images = training.Append(jpegs.First(jpeg => HoldOutSplit.IsHoldOut(SHA256.HashData(jpeg)))).ToList();
        string[] labels = ["vegetation", "glass", "vegetation", "glass"];
        for (var i = 0; i < images.Count; i++) File.WriteAllBytes(Path.Combine(_directory, $"{i}.jpg"), images[i]);
        File.WriteAllText(Path.Combine(_directory, DatasetManifest.FileName), "path,label\n" + string.Concat(labels.Select((label, i) => $"{i}.jpg,{label}\n")));
        var output = Path.Combine(_directory, "model");
        var command = new TrainCommand();
        string[] args = ["--data", _directory, "--out", output, "--cache", Path.Combine(_directory, "cache"), "--epochs", "2", "--augment", "none", "--threads", "1"];

        command.Run(new CommandArguments(args, command.ValueOptions, command.FlagOptions));

        var card = ModelCard.Load(output);
        Assert.Equal(TrainingDataFingerprint.Of(training.Select((jpeg, i) => (SHA256.HashData(jpeg), labels[i]))),
            card.Training!.Value.GetProperty("data_fingerprint").GetString());
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
