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
}
