using WasteClassifier.LoadTesting.Reporting;

namespace WasteClassifier.UnitTests.LoadTesting;

/// <summary>The steady throughput the reports and the benchmark use, from completions that arrive a batch at a time.</summary>
public sealed class SteadyRateTests
{
    [Theory]
    [InlineData(0.05)]
    [InlineData(0.2)]
    [InlineData(0.35)]
    public void BatchesOf16Every400Ms_IsTheirRate_WhereverTheWindowCutsThem(double firstBatchAt)
    {
        // 40 images/s; a count of the batches inside 27 s gives 67 or 68 batches: 39.7 or 40.3 images/s.
        var finishes = Enumerable.Range(0, 100).Select(j => firstBatchAt + 0.4 * j).Where(t => t <= 27)
            .SelectMany(t => Enumerable.Repeat(t, 16)).ToList();

        Assert.Equal(40.0, LoadReportBuilder.SteadyRate(finishes, 0, 27), 6);
    }

    [Fact]
    public void SingleImagesEvery50Ms_Is20PerSecond()
    {
        var finishes = Enumerable.Range(0, 540).Select(k => 0.01 + 0.05 * k).ToList();

        Assert.Equal(20.0, LoadReportBuilder.SteadyRate(finishes, 0, 27), 6);
    }

    [Fact]
    public void BatchesSeenOverAFewMilliseconds_AreStillTheirRate()
    {
        // As a client sees them: a batch's 16 results a fraction of a millisecond apart, not at one instant.
        var finishes = Enumerable.Range(0, 67).SelectMany(j => Enumerable.Range(0, 16).Select(i => 0.2 + 0.4 * j + 0.0003 * i)).ToList();

        Assert.Equal(40.0, LoadReportBuilder.SteadyRate(finishes, 0, 27), 1);
    }

    [Fact]
    public void StallAtTheEnd_IsTheCountOverTheWindow()
    {
        // 20 images/s for 10 s, then nothing for the rest of the 27 s window: the slope alone says 20/s.
        var finishes = Enumerable.Range(0, 200).Select(k => 0.01 + 0.05 * k).ToList();

        Assert.Equal(200 / 27.0, LoadReportBuilder.SteadyRate(finishes, 0, 27), 6);
    }

    [Fact]
    public void StallAtTheStart_IsTheCountOverTheWindow()
    {
        // Nothing for 20 s though a completion was possible from 50 ms on (the quickest round trip).
        var finishes = Enumerable.Range(0, 140).Select(k => 20.01 + 0.05 * k).ToList();

        Assert.Equal(140 / 27.0, LoadReportBuilder.SteadyRate(finishes, 0, 27, earliestCompletion: 0.05), 6);
    }

    [Fact]
    public void NoRampFirstCompletionOneLatencyAfterTheStart_IsTheirRate()
    {
        // A closed loop without a ramp: the first batch can only come one round trip (4.8 s) after the window's start at 0.
        var finishes = Enumerable.Range(0, 100).Select(j => 4.8 + 0.4 * j).Where(t => t <= 27).SelectMany(t => Enumerable.Repeat(t, 16)).ToList();

        Assert.Equal(40.0, LoadReportBuilder.SteadyRate(finishes, 0, 27, earliestCompletion: 4.8), 6);
    }

    [Fact]
    public void TwoCompletions5MsApart_IsTheCountOverTheWindow() =>
        // The slope through them is 200/s.
        Assert.Equal(0.2, LoadReportBuilder.SteadyRate([3.0, 3.005], 0, 10), 6);

    [Theory]
    [InlineData(new double[0], 0)]
    [InlineData(new[] { 3.0 }, 0.1)]
    [InlineData(new[] { 3.0, 3.0, 3.0 }, 0.3)]
    public void TooFewDistinctTimes_IsTheCountOverTheWindow(double[] finishes, double expected) =>
        Assert.Equal(expected, LoadReportBuilder.SteadyRate(finishes, 0, 10), 6);
}
