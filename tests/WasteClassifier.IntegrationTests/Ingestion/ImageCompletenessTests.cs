using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Cli.Ingest;
using WasteClassifier.Core.Imaging;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Ingestion;

/// <summary>Whether a file settled by size holds a whole image (what <c>wastectl ingest</c> waits for before sending).</summary>
public sealed class ImageCompletenessTests
{
    private static readonly string Folder = IngestionFixture.TempFolder("completeness");

    private static string Write(string name, byte[] bytes)
    {
        var path = Path.Combine(Folder, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Jpeg_CutAnywhere_IncompleteAndWholeOrWithTrailingBytes_Complete()
    {
        var jpeg = File.ReadAllBytes(Dataset.Manifest[0].Path);
        Assert.True(ImageCompleteness.IsComplete(Write("whole.jpg", jpeg)));
        Assert.True(ImageCompleteness.IsComplete(Write("trailing.jpg", [.. jpeg, .. "camera data"u8])));
        foreach (var cut in new[] { 2, 3, 20, 200, jpeg.Length * 3 / 10, jpeg.Length * 7 / 10, jpeg.Length - 2, jpeg.Length - 1 })
            Assert.Equal(ImageCompleteness.Verdict.JpegWithoutEnd, ImageCompleteness.Check(Write($"cut-{cut}.jpg", jpeg[..cut])));
    }

    [Fact]
    public void Jpeg_CutAfterAnEmbeddedThumbnailsEndMarker_Incomplete()
    {
        var jpeg = File.ReadAllBytes(Dataset.Manifest[1].Path);
        // An APP1 segment (as EXIF carries a thumbnail) holding a whole small JPEG, FF D9 included, right after SOI.
        byte[] thumbnail = [0xFF, 0xD8, 0xFF, 0xD9];
        var length = thumbnail.Length + 2;
        byte[] app1 = [0xFF, 0xE1, (byte)(length >> 8), (byte)length, .. thumbnail];
        byte[] withThumbnail = [.. jpeg[..2], .. app1, .. jpeg[2..]];
        Assert.True(ImageCompleteness.IsComplete(Write("thumb-whole.jpg", withThumbnail)));
        Assert.False(ImageCompleteness.IsComplete(Write("thumb-cut.jpg", withThumbnail[..(withThumbnail.Length / 2)])));
        Assert.False(ImageCompleteness.IsComplete(Write("thumb-cut-early.jpg", withThumbnail[..(2 + app1.Length + 10)])));
    }

    [Fact]
    public void Png_CutBeforeIend_IncompleteAndWhole_Complete()
    {
        using var image = new Image<Rgb24>(64, 48);
        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        var png = stream.ToArray();
        Assert.True(ImageCompleteness.IsComplete(Write("whole.png", png)));
        foreach (var cut in new[] { 8, 20, png.Length / 2, png.Length - 1 })
            Assert.False(ImageCompleteness.IsComplete(Write($"cut-{cut}.png", png[..cut])), $"cut at {cut} of {png.Length}");
    }

    [Fact]
    public void OtherFormatsAndMalformedFiles_CountAsComplete()
    {
        Assert.True(ImageCompleteness.IsComplete(Write("notes.jpg", "this is not a photograph"u8.ToArray())));
        Assert.True(ImageCompleteness.IsComplete(Write("frame.bmp", [(byte)'B', (byte)'M', 1, 2, 3])));
        Assert.True(ImageCompleteness.IsComplete(Write("one.bmp", [(byte)'B'])));
    }

    [Fact]
    public void Jpeg_JudgedByTheApisRule()
    {
        // No marker after SOI: the API's JpegEnd takes it for truncated, and so does the ingester (one definition).
        byte[] garbage = [0xFF, 0xD8, 0x12, 0x34, 0x56];
        Assert.True(JpegEnd.IsTruncated(garbage));
        Assert.Equal(ImageCompleteness.Verdict.JpegWithoutEnd, ImageCompleteness.Check(Write("garbage.jpg", garbage)));
    }

    [Fact]
    public void EmptyOrOnlyASignaturesStart_Incomplete()
    {
        // An FTP server creates the file before its data: the first bytes of a JPEG or PNG are not another format.
        Assert.False(ImageCompleteness.IsComplete(Write("empty.jpg", [])));
        Assert.False(ImageCompleteness.IsComplete(Write("ff.jpg", [0xFF])));
        byte[] png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
        for (var n = 1; n < png.Length; n++) Assert.False(ImageCompleteness.IsComplete(Write($"sig-{n}.png", png[..n])), $"{n} bytes");
    }
}
