using System.Security.Cryptography;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Core.Imaging;
using WasteClassifier.LoadTesting.Images;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.LoadTesting;

/// <summary>A stamped upload is new content with the same pixels, and the API's intake still accepts it.</summary>
public sealed class UniqueStampTests
{
    public static TheoryData<string> Formats => new() { "jpeg", "png" };

    [Theory]
    [MemberData(nameof(Formats))]
    public void Apply_TwoNonces_DifferentBytesSamePixels(string format)
    {
        var original = format == "jpeg" ? ImageSet.Jpeg(64, 48, seed: 3) : TestImages.SplitPng(64, 48, new Rgb24(200, 10, 10), new Rgb24(10, 10, 200));

        var first = UniqueStamp.Apply(original, Guid.NewGuid());
        var second = UniqueStamp.Apply(original, Guid.NewGuid());

        Assert.NotEqual(Convert.ToHexString(SHA256.HashData(first)), Convert.ToHexString(SHA256.HashData(second)));
        Assert.True(ImageTensorWriter.Inspect(first, new ImageLimits()).Ok);
        using var expected = Image.Load<Rgb24>(original);
        using var stamped = Image.Load<Rgb24>(first);
        Assert.Equal(Pixels(expected), Pixels(stamped));
    }

    [Fact]
    public void CanStamp_OtherFormat_No() => Assert.False(UniqueStamp.CanStamp("GIF89a"u8));

    private static Rgb24[] Pixels(Image<Rgb24> image)
    {
        var pixels = new Rgb24[image.Width * image.Height];
        image.CopyPixelDataTo(pixels);
        return pixels;
    }
}
