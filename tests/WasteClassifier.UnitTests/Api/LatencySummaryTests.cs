using WasteClassifier.Api.Stats;

namespace WasteClassifier.UnitTests.Api;

public sealed class LatencySummaryTests
{
    [Fact]
    public void FromSorted_OneToHundred_MatchesPostgresPercentileCont()
    {
        var summary = LatencySummary.FromSorted(Enumerable.Range(1, 100).Select(i => (double)i).ToList());

        Assert.Equal(100, summary.Count);
        Assert.Equal(1, summary.Min);
        Assert.Equal(50.5, summary.Mean);
        Assert.Equal(50.5, summary.P50);
        Assert.Equal(95.05, summary.P95);
        Assert.Equal(99.01, summary.P99);
        Assert.Equal(100, summary.Max);
    }

    [Fact]
    public void FromSorted_Empty_HasNoFigures()
    {
        var summary = LatencySummary.FromSorted([]);
        Assert.Equal(0, summary.Count);
        Assert.Null(summary.P95);
    }

    [Fact]
    public void FromSorted_OneValue_EveryPercentileIsThatValue()
    {
        var summary = LatencySummary.FromSorted([42.0]);
        Assert.Equal(42.0, summary.P50);
        Assert.Equal(42.0, summary.P99);
    }
}
