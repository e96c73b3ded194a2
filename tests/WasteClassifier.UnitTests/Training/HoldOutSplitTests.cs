using System.Security.Cryptography;
using System.Text;
using WasteClassifier.Core.Training;

namespace WasteClassifier.UnitTests.Training;

public class HoldOutSplitTests
{
    [Fact]
    public void IsHoldOutContent_SameBytesTwice_SameAnswer()
    {
        var bytes = Encoding.UTF8.GetBytes("a photo of a bottle");

        Assert.Equal(HoldOutSplit.IsHoldOutContent(bytes), HoldOutSplit.IsHoldOutContent(bytes.ToArray()));
    }

    [Fact]
    public void IsHoldOut_KnownHash_UsesFirstFourBytesModFive()
    {
        Assert.True(HoldOutSplit.IsHoldOut([0, 0, 0, 10, .. new byte[28]]));
        Assert.False(HoldOutSplit.IsHoldOut([0, 0, 0, 11, .. new byte[28]]));
    }

    [Fact]
    public void IsHoldOut_ManyContents_HoldsOutAboutOneInFive()
    {
        var held = Enumerable.Range(0, 5000).Count(i => HoldOutSplit.IsHoldOut(SHA256.HashData(BitConverter.GetBytes(i))));

        Assert.InRange(held, 900, 1100);
    }
}
