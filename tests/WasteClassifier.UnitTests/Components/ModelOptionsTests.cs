using WasteClassifier.Components.Models;

namespace WasteClassifier.UnitTests.Components;

public sealed class ModelOptionsTests
{
    [Fact]
    public void ToInferenceOptions_Defaults_OneSingleThreadedRunPerCore()
    {
        var options = new ModelOptions().ToInferenceOptions();

        Assert.Equal(Environment.ProcessorCount, options.ConcurrentRuns);
        Assert.Equal(1, options.IntraOpThreads);
    }

    [Fact]
    public void ToInferenceOptions_OneLane_GetsEveryCore()
    {
        var options = new ModelOptions { InferenceLanes = 1 }.ToInferenceOptions();

        Assert.Equal(1, options.ConcurrentRuns);
        Assert.Equal(Environment.ProcessorCount, options.IntraOpThreads);
    }

    [Fact]
    public void ToSequentialInferenceOptions_IgnoresLanes_OneRunOverEveryCore()
    {
        var options = new ModelOptions { InferenceLanes = 4 }.ToSequentialInferenceOptions();

        Assert.Equal(1, options.ConcurrentRuns);
        Assert.Equal(Environment.ProcessorCount, options.IntraOpThreads);
    }

    [Fact]
    public void ToInferenceOptions_ThreadsSet_AreKeptPerLane()
    {
        var options = new ModelOptions { InferenceLanes = 2, InferenceThreads = 3 }.ToInferenceOptions();

        Assert.Equal(2, options.ConcurrentRuns);
        Assert.Equal(3, options.IntraOpThreads);
    }

    [Theory]
    [InlineData(-1, 0, 8, "Model:InferenceLanes is -1")]
    [InlineData(0, -2, 8, "Model:InferenceThreads is -2")]
    [InlineData(0, 0, -8, "Model:ImagesPerRun is -8")]
    public void Validated_NegativeCount_ThrowsNamingTheSetting(int lanes, int threads, int perRun, string expected)
    {
        var error = Assert.Throws<InvalidOperationException>(() => new ModelOptions { InferenceLanes = lanes, InferenceThreads = threads, ImagesPerRun = perRun }.Validated());

        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(86_401)]
    [InlineData(int.MaxValue)]
    public void Validated_RefreshSecondsOutOfRange_ThrowsNamingTheSetting(int seconds)
    {
        var error = Assert.Throws<InvalidOperationException>(() => new ModelOptions { RefreshSeconds = seconds }.Validated());

        Assert.Contains($"Model:RefreshSeconds is {seconds}", error.Message);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(86_400)]
    public void Validated_RefreshSecondsInRange_IsKept(int seconds) => Assert.Equal(seconds, new ModelOptions { RefreshSeconds = seconds }.Validated().RefreshSeconds);
}
