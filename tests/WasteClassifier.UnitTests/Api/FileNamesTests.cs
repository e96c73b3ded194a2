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

    [Theory]
    [InlineData(".jpg")]
    [InlineData(".jpeg")]
    public void Sanitize_VeryLongName_IsShortenedKeepingItsExtension(string extension)
    {
        var name = FileNames.Sanitize(new string('x', 1000) + extension)!;

        Assert.Equal(FileNames.MaxLength, name.Length);
        Assert.EndsWith("x" + extension, name);
    }

    [Theory]
    [InlineData("no extension")]
    [InlineData("not an extension.a b c")]
    public void Sanitize_VeryLongNameWithoutAnExtension_IsCutAtTheLimit(string end)
    {
        var given = new string('x', 1000) + end;

        Assert.Equal(given[..FileNames.MaxLength], FileNames.Sanitize(given));
    }

    [Theory]
    [InlineData("\U0001F600")] // a surrogate pair: 200 UTF-16 units would end between its halves
    [InlineData("e\u0301")] // e and a combining accent: one character on screen
    public void Sanitize_LongNameWithACharacterAcrossTheLimit_CutBeforeIt(string character)
    {
        // 196 units are left for the stem beside ".jpg".
        var name = FileNames.Sanitize(new string('a', 195) + character + ".jpg")!;

        Assert.Equal(new string('a', 195) + ".jpg", name);
        // Half a surrogate pair is not UTF-8: PostgreSQL's driver refused to send it, and the whole request failed.
        Assert.Equal(name, System.Text.Encoding.UTF8.GetString(new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetBytes(name)));
    }
}
