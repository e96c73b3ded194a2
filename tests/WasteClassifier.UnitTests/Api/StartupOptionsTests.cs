using WasteClassifier.Api.Submissions;

namespace WasteClassifier.UnitTests.Api;

/// <summary>Settings that could never work are refused at start, naming the setting, instead of failing silently.</summary>
public sealed class StartupOptionsTests
{
    [Theory]
    [InlineData(-1)]
    [InlineData(0)]       // every JSON route answered 413
    [InlineData(2097153)] // above MaxRequestBytes: raised the whole-request cap on the JSON routes
    public void Uploads_MaxJsonBodyBytesOutOfRange_Refused(long value)
    {
        var e = Assert.Throws<InvalidOperationException>(() => new UploadOptions { MaxRequestBytes = 2097152, MaxJsonBodyBytes = value }.Validated());
        Assert.Contains("Uploads:MaxJsonBodyBytes", e.Message);
        Assert.Contains("Uploads:MaxRequestBytes (2097152)", e.Message);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2097152)]
    public void Uploads_MaxJsonBodyBytesInRange_Accepted(long value) =>
        new UploadOptions { MaxRequestBytes = 2097152, MaxJsonBodyBytes = value }.Validated();

    [Fact]
    public void Uploads_Defaults_Accepted() => new UploadOptions().Validated();
}
