using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.UnitTests.LoadTesting;

namespace WasteClassifier.UnitTests.Infrastructure;

public sealed class RepeatedFailureLogTests
{
    [Fact]
    public void SameReason_LoggedFirstThenOncePerIntervalWithTheCountLeftOut()
    {
        var clock = new ManualClock();
        var log = new RepeatedFailureLog(TimeSpan.FromMinutes(5), clock);

        Assert.True(log.Failed("down", out var unlogged, out _));
        Assert.Equal(0, unlogged);
        for (var i = 0; i < 3; i++)
        {
            clock.Advance(TimeSpan.FromMinutes(1));
            Assert.False(log.Failed("down", out _, out _));
        }
        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.True(log.Failed("down", out unlogged, out var since));
        Assert.Equal(3, unlogged);
        Assert.Equal(TimeSpan.FromMinutes(5), since);
    }

    [Fact]
    public void AnotherReasonOrAFailureAfterASuccess_LoggedAtOnce()
    {
        var log = new RepeatedFailureLog(TimeSpan.FromMinutes(5), new ManualClock());

        Assert.True(log.Failed("down", out _, out _));
        Assert.False(log.Failed("down", out _, out _));
        Assert.True(log.Failed("refused", out var unlogged, out _));
        Assert.Equal(0, unlogged);

        Assert.True(log.Succeeded());
        Assert.False(log.Succeeded());
        Assert.True(log.Failed("refused", out unlogged, out _));
        Assert.Equal(0, unlogged);
    }

    [Fact]
    public void AlternatingReasons_EachLoggedOncePerInterval()
    {
        // An outage whose cause alternates (a failover: refused, timed out, refused…) logged every try when only the last
        // reason was kept.
        var clock = new ManualClock();
        var log = new RepeatedFailureLog(TimeSpan.FromMinutes(5), clock);

        Assert.True(log.Failed("refused", out _, out _));
        Assert.True(log.Failed("timeout", out _, out _));
        for (var i = 0; i < 4; i++)
        {
            clock.Advance(TimeSpan.FromSeconds(15));
            Assert.False(log.Failed(i % 2 == 0 ? "refused" : "timeout", out _, out _));
        }
        clock.Advance(TimeSpan.FromMinutes(4));
        Assert.True(log.Failed("refused", out var unlogged, out var since));
        Assert.Equal((2, TimeSpan.FromMinutes(5)), (unlogged, since));
    }

    [Fact]
    public void ReasonsPastTheLimit_TheOneLoggedLongestAgoIsForgotten()
    {
        var clock = new ManualClock();
        var log = new RepeatedFailureLog(TimeSpan.FromMinutes(5), clock);
        for (var i = 0; i <= RepeatedFailureLog.MaxReasons; i++)
        {
            Assert.True(log.Failed($"reason {i}", out _, out _));
            clock.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.True(log.Failed("reason 0", out _, out _));
        Assert.False(log.Failed($"reason {RepeatedFailureLog.MaxReasons}", out _, out _));
    }
}
