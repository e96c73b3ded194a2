using WasteClassifier.LoadTesting;

namespace WasteClassifier.UnitTests.LoadTesting;

public sealed class TargetGuardTests
{
    [Theory]
    [InlineData("localhost", true)]
    [InlineData("127.0.0.1", true)]
    [InlineData("[::1]", true)]
    [InlineData("10.1.2.3", false)]
    [InlineData("203.0.113.9", false)]
    public void IsLoopback_Host_OnlyThisMachine(string host, bool expected) => Assert.Equal(expected, TargetGuard.IsLoopback(host));

    [Fact]
    public void Validate_RemoteTargetWithoutFlag_Refused()
    {
        var options = new LoadTestOptions { Target = new Uri("http://203.0.113.9/"), Users = 1 };
        Assert.Throws<ArgumentException>(options.Validate);
        (options with { AllowRemote = true }).Validate();
    }
}
