using WasteClassifier.Api.Submissions;

namespace WasteClassifier.UnitTests.Api;

public sealed class FileNamesTests
{
    [Theory]
    [InlineData("photo.jpg", "photo.jpg")]
    [InlineData("../../etc/passwd", "passwd")]
    [InlineData("C:\\Users\\cam\\frame 01.jpg", "frame 01.jpg")]
    [InlineData("bad\u0001\u0007name\r\n.jpg", "badname.jpg")]
    [InlineData("...hidden", "hidden")]
    [InlineData("a<b>c:d|e?.jpg", "abcde.jpg")]
    [InlineData("   ", null)]
    [InlineData(null, null)]
    [InlineData("dir/", null)]
    public void Sanitize_ClientFilename_KeepsOnlyASafeDisplayName(string? given, string? expected) =>
        Assert.Equal(expected, FileNames.Sanitize(given));

    [Fact]
    public void Sanitize_VeryLongName_IsCut()
    {
        Assert.Equal(200, FileNames.Sanitize(new string('x', 1000) + ".jpg")!.Length);
    }
}
