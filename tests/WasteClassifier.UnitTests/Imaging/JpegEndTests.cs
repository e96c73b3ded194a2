using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Imaging;

/// <summary>A JPEG cut short is refused (truncated_image), never decoded as far as its data goes and classified.</summary>
public class JpegEndTests
{
    private static readonly ModelInputSpec Input = new() { Width = 224, Height = 224 };

    [Fact]
    public void Inspect_HeaderOnlyDatasetJpeg_RefusedAsTruncated()
    {
        // The walkthrough's hdr.jpg: the first 700 bytes of a dataset photo, its headers and a few bytes of the scan.
        var header = DatasetJpeg()[..700];

        var check = ImageTensorWriter.Inspect(header, ImageLimits.Default);

        Assert.Equal(ImageErrors.Truncated, check.Error);
        Assert.Contains("ends before the image's end", check.Message);
    }

    [Fact]
    public void Inspect_HeaderFollowedByRandomBytes_RefusedAsTruncated()
    {
        var bytes = DatasetJpeg()[..2000].Concat(RandomWithoutEnd(30_000)).ToArray();

        Assert.Equal(ImageErrors.Truncated, ImageTensorWriter.Inspect(bytes, ImageLimits.Default).Error);
    }

    [Fact]
    public void Write_HalfOfACameraFrame_FailsTruncatedWithoutDecoding()
    {
        var frame = Jpeg(640, 480);

        var check = ImageTensorWriter.Write(frame[..(frame.Length / 2)], Input, new float[ImageTensorWriter.TensorLength(Input)], ImageLimits.Default);

        Assert.False(check.Ok);
        Assert.Equal(ImageErrors.Truncated, check.Error);
    }

    [Fact]
    public void Inspect_CompleteJpegWithBytesAfterItsEnd_Accepted()
    {
        // Some cameras append a trailer after the end-of-image marker.
        var bytes = Jpeg(320, 240).Concat(RandomWithoutEnd(500)).ToArray();

        Assert.True(ImageTensorWriter.Inspect(bytes, ImageLimits.Default).Ok);
    }

    [Fact]
    public void IsTruncated_ThumbnailEndInExifButMainImageCut_Truncated()
    {
        // An EXIF thumbnail's own FFD9 sits in APP1, before the first scan, so it does not count as the image's end.
        using var image = Gradient(320, 240);
        image.Metadata.ExifProfile = new ExifProfile();
        image.Metadata.ExifProfile.SetValue(ExifTag.MakerNote, [0xFF, 0xD8, 0x00, 0xFF, 0xD9]);
        var jpeg = Encode(image);
        var app1 = jpeg.AsSpan().IndexOf([(byte)0xFF, (byte)0xE1]);
        var scan = jpeg.AsSpan().IndexOf([(byte)0xFF, (byte)0xDA]);
        Assert.InRange(jpeg.AsSpan(app1, scan - app1).IndexOf([(byte)0xFF, (byte)0xD9]), 0, int.MaxValue);

        Assert.False(JpegEnd.IsTruncated(jpeg));
        Assert.True(JpegEnd.IsTruncated(jpeg[..(jpeg.Length - 2)]));
        Assert.True(JpegEnd.IsTruncated(jpeg[..(scan + 40)]));
    }

    [Fact]
    public void IsTruncated_EveryDatasetPhoto_Complete()
    {
        var files = Directory.EnumerateFiles(TestPaths.Dataset, "*.jpg", SearchOption.AllDirectories).ToList();
        Assert.NotEmpty(files);
        Assert.All(files, f => Assert.False(JpegEnd.IsTruncated(File.ReadAllBytes(f)), f));
    }

    [Fact]
    public void IsTruncated_NotAJpeg_False()
    {
        Assert.False(JpegEnd.IsTruncated(TestImages.SolidPng(8, 8, new Rgb24(1, 2, 3))));
        Assert.False(JpegEnd.IsTruncated([]));
    }

    private static byte[] DatasetJpeg() =>
        File.ReadAllBytes(Directory.EnumerateFiles(Path.Combine(TestPaths.Dataset, "glass"), "*.jpg").Order().First());

    /// <summary>Random bytes with no FF D9 in them: a chance end-of-image marker would make the file look complete.</summary>
    private static byte[] RandomWithoutEnd(int length)
    {
        var bytes = new byte[length];
        new Random(7).NextBytes(bytes);
        for (var i = 1; i < bytes.Length; i++)
            if (bytes[i - 1] == 0xFF && bytes[i] == 0xD9) bytes[i] = 0xD8;
        return bytes;
    }

    private static byte[] Jpeg(int width, int height)
    {
        using var image = Gradient(width, height);
        return Encode(image);
    }

    private static byte[] Encode(Image image)
    {
        using var stream = new MemoryStream();
        image.SaveAsJpeg(stream, new JpegEncoder { Quality = 90 });
        return stream.ToArray();
    }

    private static Image<Rgb24> Gradient(int width, int height)
    {
        var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
            for (var x = 0; x < width; x++)
                image[x, y] = new Rgb24((byte)(x * 255 / width), (byte)(y * 255 / height), (byte)((x * y) % 256));
        return image;
    }
}
