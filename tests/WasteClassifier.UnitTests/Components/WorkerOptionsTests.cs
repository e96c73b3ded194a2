using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using WasteClassifier.Components;
using WasteClassifier.Components.Classifying;

namespace WasteClassifier.UnitTests.Components;

public sealed class WorkerOptionsTests
{
    [Fact]
    public void Validated_Defaults_AreAccepted() => new WorkerOptions().Validated();

    [Theory]
    [InlineData("BatchSize", "0", "Worker:BatchSize is 0; it must be 1 or more")]
    [InlineData("BatchSize", "-4", "Worker:BatchSize is -4; it must be 1 or more")]
    [InlineData("BatchWaitMs", "-1", "Worker:BatchWaitMs is -1; it must be 0 or more")]
    [InlineData("PipelineDepth", "-1", "Worker:PipelineDepth is -1; it must be 0 or more")]
    [InlineData("DecodeParallelism", "0", "Worker:DecodeParallelism is 0; it must be 1 or more")]
    [InlineData("MaxAttempts", "0", "Worker:MaxAttempts is 0; it must be 1 or more")]
    [InlineData("MaxPixels", "0", "Worker:MaxPixels is 0; it must be 1 or more")]
    [InlineData("HeartbeatSeconds", "0", "Worker:HeartbeatSeconds is 0; it must be 1 or more")]
    [InlineData("HeartbeatSeconds", "3601", "Worker:HeartbeatSeconds is 3601; it must be 3600 or less")]
    [InlineData("HeartbeatRetentionHours", "0", "Worker:HeartbeatRetentionHours is 0; it must be 1 or more")]
    [InlineData("HeartbeatRetentionHours", "8761", "Worker:HeartbeatRetentionHours is 8761; it must be 8760 (a year) or less")]
    [InlineData("Id", " ", "Worker:Id ' ' must be 1 to 128 characters")]
    public void AddClassificationWorker_SettingThatWouldStallEveryBatch_RefusedNamingIt(string setting, string value, string expected)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [$"Worker:{setting}"] = value }).Build();

        var error = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddClassificationWorker(configuration));

        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData("0", "Worker:HeartbeatRetentionHours is 0; it must be 1 or more")]
    [InlineData("8761", "Worker:HeartbeatRetentionHours is 8761; it must be 8760 (a year) or less")]
    public void AddWorkerHeartbeatSweeper_BadRetentionInAProcessRunningNoWorker_RefusedNamingIt(string value, string expected)
    {
        // An API-only process validates no other worker setting, but sweeps by this one.
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Worker:HeartbeatRetentionHours"] = value }).Build();

        var error = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddWorkerHeartbeatSweeper(configuration));

        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void AddWorkerHeartbeatSweeper_ProcessThatIsApiAndWorker_RunsOneSweeper()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Worker:HeartbeatRetentionHours"] = "5" }).Build();

        // As the API registers it: its own, then the worker's inside it.
        var services = new ServiceCollection().AddWorkerHeartbeatSweeper(configuration).AddClassificationWorker(configuration);

        Assert.Single(services, d => d.ServiceType == typeof(IHostedService) && d.ImplementationType == typeof(WorkerHeartbeatSweeper));
        using var provider = services.BuildServiceProvider();
        Assert.Equal(5, provider.GetRequiredService<WorkerHeartbeatRetention>().Hours);
    }

    [Fact]
    public void Validated_IdLongerThanItsColumn_Refused()
    {
        var error = Assert.Throws<InvalidOperationException>(() => new WorkerOptions { Id = new string('w', 129) }.Validated());

        Assert.Contains("Worker:Id", error.Message);
    }

    [Fact]
    public void AddClassificationWorker_PipelineDepthZero_IsOneMoreThanTheLanes()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Worker:PipelineDepth"] = "0",
            ["Model:InferenceLanes"] = "3",
        }).Build();

        using var services = new ServiceCollection().AddClassificationWorker(configuration).BuildServiceProvider();

        Assert.Equal(4, services.GetRequiredService<WorkerOptions>().PipelineDepth);
    }
}
