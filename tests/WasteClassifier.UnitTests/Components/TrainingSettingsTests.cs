using Microsoft.Extensions.Configuration;
using WasteClassifier.Components.Training;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Components;

public sealed class TrainingSettingsTests
{
    [Theory]
    [InlineData("0", "120", "Training:HeartbeatSeconds is 0")]
    [InlineData("-5", "120", "Training:HeartbeatSeconds is -5")]
    [InlineData("30", "30", "Training:StaleAfterSeconds is 30; it must be more than Training:HeartbeatSeconds (30)")]
    public void From_HeartbeatThatCannotKeepAJobAlive_ThrowsNamingTheSetting(string heartbeat, string staleAfter, string expected)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Training:HeartbeatSeconds"] = heartbeat, ["Training:StaleAfterSeconds"] = staleAfter })
            .Build();

        var error = Assert.Throws<InvalidOperationException>(() => TrainingSettings.From(configuration));

        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void From_SweepSecondsBelowOne_ThrowsNamingTheSetting()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Training:SweepSeconds"] = "0" }).Build();

        var error = Assert.Throws<InvalidOperationException>(() => TrainingSettings.From(configuration));

        Assert.Contains("Training:SweepSeconds is 0", error.Message);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    public void From_MaxAttemptsBelowOne_ThrowsNamingTheSetting(string maxAttempts)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Training:MaxAttempts"] = maxAttempts }).Build();

        var error = Assert.Throws<InvalidOperationException>(() => TrainingSettings.From(configuration));

        Assert.Contains($"Training:MaxAttempts is {maxAttempts}; it must be 1 or more", error.Message);
    }

    [Fact]
    public void From_MinClassSupportBelowOne_ThrowsNamingTheSetting()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Training:MinClassSupport"] = "0" }).Build();

        var error = Assert.Throws<InvalidOperationException>(() => TrainingSettings.From(configuration));

        Assert.Contains("Training:MinClassSupport is 0; it must be 1 or more", error.Message);
    }

    [Theory]
    [InlineData(" ")]
    [InlineData("")]
    public void From_BlankTrainerId_ThrowsNamingTheSetting(string trainerId)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Training:TrainerId"] = trainerId }).Build();

        var error = Assert.Throws<InvalidOperationException>(() => TrainingSettings.From(configuration));

        Assert.Contains($"Training:TrainerId '{trainerId}' must be 1 to 128 characters", error.Message);
    }

    [Fact]
    public void Validated_TrainerIdLongerThanItsColumn_ThrowsNamingTheSetting()
    {
        var error = Assert.Throws<InvalidOperationException>(() => new TrainingSettings { TrainerId = new string('t', 129) }.Validated());

        Assert.Contains("Training:TrainerId", error.Message);
    }

    [Fact]
    public void From_TrainerIdSet_IsThatId()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Training:TrainerId"] = "trainer-7" }).Build();

        Assert.Equal("trainer-7", TrainingSettings.From(configuration).TrainerId);
    }

    [Fact]
    public void ResolveDataset_NotConfigured_SaysWhatToSet()
    {
        var settings = new TrainingSettings { Datasets = { ["waste-v1"] = "/datasets/waste-v1" } };

        var error = Assert.Throws<KeyNotFoundException>(() => settings.ResolveDataset("waste-v2"));

        Assert.Contains("Training__Datasets__waste-v2", error.Message);
        Assert.Contains("configured: waste-v1", error.Message);
    }

    [Fact]
    public void ResolveDataset_ShippedRelativePathFromAnotherWorkingDirectory_FoundFromTheProjectFolder()
    {
        // The shipped default is written from a project folder (dotnet run's working directory); this test's process runs
        // elsewhere (its bin folder), as a built service started from the repository root does. It resolved against the
        // working directory only, to a folder that does not exist.
        var relative = Path.Combine("..", "..", "..", "shared", "datasets", "waste-v1");
        Assert.False(Directory.Exists(Path.GetFullPath(relative)), $"the working directory {Environment.CurrentDirectory} already finds it");
        var settings = new TrainingSettings { Datasets = { ["waste-v1"] = relative } };

        Assert.Equal(TestPaths.Dataset, settings.ResolveDataset("waste-v1"));
    }

    [Fact]
    public void ResolvePath_FoundFromNoBase_ErrorNamesEveryPathTried()
    {
        var working = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", Guid.NewGuid().ToString("N"));

        var error = Assert.Throws<DirectoryNotFoundException>(() => TrainingSettings.ResolvePath("waste-v9", "data/waste-v9", working, AppContext.BaseDirectory));

        Assert.Contains(Path.Combine(working, "data", "waste-v9"), error.Message);
        Assert.Contains(Path.Combine(AppContext.BaseDirectory, "data", "waste-v9"), error.Message);
        Assert.Contains(Path.Combine(TestPaths.RepositoryRoot, "tests", "WasteClassifier.UnitTests", "data", "waste-v9"), error.Message);
        Assert.Contains("Training__Datasets__waste-v9", error.Message);
    }

    [Fact]
    public void ResolvePath_WorkingDirectoryFolderWithoutManifest_PassedOverForTheOneWithItAndLogged()
    {
        var root = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", Guid.NewGuid().ToString("N"));
        var working = Path.Combine(root, "working");
        var app = Path.Combine(root, "app");
        try
        {
            // An empty folder of that name under the working directory (a mount point, a checkout without the data).
            Directory.CreateDirectory(Path.Combine(working, "data", "waste-v9"));
            Directory.CreateDirectory(Path.Combine(app, "data", "waste-v9"));
            File.WriteAllText(Path.Combine(app, "data", "waste-v9", "manifest.csv"), "path,label\n");
            var logger = new ListLogger();

            var resolved = TrainingSettings.ResolvePath("waste-v9", Path.Combine("data", "waste-v9"), working, app, logger);

            // It took the empty folder, and the job failed with no manifest.csv there, saying nothing of the other.
            Assert.Equal(Path.Combine(app, "data", "waste-v9"), resolved);
            Assert.Contains(logger.Messages, m => m.Contains(resolved) && m.Contains(working));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private sealed class ListLogger : Microsoft.Extensions.Logging.ILogger
    {
        public List<string> Messages { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception,
            Func<TState, Exception?, string> formatter) => Messages.Add(formatter(state, exception));
    }

    [Fact]
    public void ResolvePath_FoundFromTheWorkingDirectoryAndTheAppFolder_TheWorkingDirectoryWins()
    {
        var root = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", Guid.NewGuid().ToString("N"));
        var working = Path.Combine(root, "working");
        var app = Path.Combine(root, "app");
        try
        {
            // Both candidates hold the dataset: the one from the working directory, where dotnet run starts a service, wins.
            foreach (var folder in new[] { working, app })
            {
                Directory.CreateDirectory(Path.Combine(folder, "data", "waste-v9"));
                File.WriteAllText(Path.Combine(folder, "data", "waste-v9", "manifest.csv"), "path,label\n");
            }

            Assert.Equal(Path.Combine(working, "data", "waste-v9"), TrainingSettings.ResolvePath("waste-v9", Path.Combine("data", "waste-v9"), working, app));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void From_NoSection_DefaultsThatPassTheirOwnCheck()
    {
        var settings = TrainingSettings.From(new ConfigurationBuilder().Build());

        Assert.Equal(2, settings.HeartbeatSeconds);
        Assert.Equal(120, settings.StaleAfterSeconds);
        Assert.Equal(3, settings.MaxAttempts);
        Assert.Equal($"{Environment.MachineName}-{Environment.ProcessId}".ToLowerInvariant(), settings.TrainerId);
    }

    [Theory]
    [InlineData("WasteClassifier.Api")]
    [InlineData("WasteClassifier.Trainer")]
    public void AppSettings_DefaultDataset_IsTheSharedDatasetFromTheProjectFolder(string project)
    {
        // dotnet run starts the Web and Worker SDKs' projects in their own folder (RunWorkingDirectory), which is where the
        // shipped appsettings.json's relative dataset path resolves: a path written from the repository root failed every
        // training job of the embedded default with "no manifest.csv".
        var folder = Path.Combine(TestPaths.RepositoryRoot, "src", project);
        var configuration = new ConfigurationBuilder().SetBasePath(folder).AddJsonFile("appsettings.json").Build();
        var settings = TrainingSettings.From(configuration);

        var path = Path.GetFullPath(Path.Combine(folder, settings.Datasets[settings.BaseDataset]));

        Assert.Equal(TestPaths.Dataset, path);
        Assert.True(File.Exists(Path.Combine(path, "manifest.csv")), $"no manifest.csv in {path}");
    }
}
