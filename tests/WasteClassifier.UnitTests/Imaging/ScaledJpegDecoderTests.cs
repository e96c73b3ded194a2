using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Imaging;

public class ScaledJpegDecoderTests
{
    private static readonly ModelInputSpec Input = new() { Width = 224, Height = 224 };

    [Fact]
    public void TryDecode_CameraFrame_DecodesAtTheSmallestScaleThatCoversTheInput()
    {
        using var image = ScaledJpegDecoder.TryDecode(CameraFrame(1920, 1080), 224, 224, ImageLimits.Default);

        // 1/8 would be 240×135, below 224 high.
        Assert.NotNull(image);
        Assert.Equal((480, 270), (image.Width, image.Height));
    }

    [Fact]
    public void Write_CameraFrame_GivesTheTensorOfAFullDecode()
    {
        var bytes = CameraFrame(1920, 1080);

        var (scaled, full) = (Tensor(bytes), FullDecodeTensor(bytes));

        Assert.True(MeanAbsoluteDifference(scaled, full) < 1.0, $"mean difference {MeanAbsoluteDifference(scaled, full):F2} levels");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(8)]
    public void Write_CameraFrameWithExifOrientation_TurnsItAsAFullDecodeDoes(ushort orientation)
    {
        var bytes = CameraFrame(1920, 1080, orientation);

        var (scaled, full) = (Tensor(bytes), FullDecodeTensor(bytes));

        // A wrongly turned frame puts other quadrants' colours in place: about 100 levels apart.
        Assert.True(MeanAbsoluteDifference(scaled, full) < 1.0, $"orientation {orientation}: mean difference {MeanAbsoluteDifference(scaled, full):F2} levels");
    }

    [Fact]
    public void TryDecode_QuarterTurnedFrame_CoversTheTargetAsShown()
    {
        // Stored 1920×1080 and shown 1080×1920 (orientation 6): a 300×900 target needs 900 stored pixels across.
        using var turned = ScaledJpegDecoder.TryDecode(CameraFrame(1920, 1080, orientation: 6), 300, 900, ImageLimits.Default);
        using var upright = ScaledJpegDecoder.TryDecode(CameraFrame(1920, 1080), 300, 900, ImageLimits.Default);

        Assert.NotNull(turned);
        Assert.Equal((960, 540), (turned.Width, turned.Height));
        Assert.Null(upright); // shown 1920×1080, half would be 540 high, under 900: decoded in full
    }

    [Fact]
    public void TryDecode_FrameOverTheLimits_IsLeftToTheFullDecode()
    {
        Assert.Null(ScaledJpegDecoder.TryDecode(CameraFrame(1920, 1080), 224, 224, new ImageLimits { MaxPixels = 1920 * 1080 - 1 }));
    }

    [Fact]
    public void TryDecode_ImageNoLargerThanTwiceTheInput_IsLeftToTheFullDecode()
    {
        Assert.Null(ScaledJpegDecoder.TryDecode(CameraFrame(440, 600), 224, 224, ImageLimits.Default));
    }

    [Fact]
    public void TryDecode_LargePng_IsLeftToTheFullDecode()
    {
        Assert.Null(ScaledJpegDecoder.TryDecode(TestImages.SolidPng(1920, 1080, new Rgb24(10, 20, 30)), 224, 224, ImageLimits.Default));
    }

    [Fact]
    public void Write_TruncatedCameraFrame_AnswersAsTheFullDecodeDoes()
    {
        var bytes = CameraFrame(1920, 1080);
        var truncated = bytes[..(bytes.Length / 2)];

        var tensor = new float[ImageTensorWriter.TensorLength(Input)];
        var check = ImageTensorWriter.Write(truncated, Input, tensor, ImageLimits.Default);
        var reference = ImageTensorWriter.Write(truncated, Input, new float[tensor.Length], ImageLimits.Default, scaledDecode: false);

        Assert.Null(ScaledJpegDecoder.TryDecode(truncated, 224, 224, ImageLimits.Default));
        Assert.Equal((reference.Ok, reference.Error), (check.Ok, check.Error));
    }

    /// <summary>A frame of four differently coloured quadrants with gradients and fine texture, saved as JPEG.</summary>
    private static byte[] CameraFrame(int width, int height, ushort orientation = 1)
    {
        using var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
            for (var x = 0; x < width; x++)
            {
                var (left, top) = (x < width / 2, y < height / 2);
                var texture = (int)(20 * MathF.Sin(x * 0.07f) * MathF.Cos(y * 0.05f));
                var shade = 60 * x / width + 40 * y / height;
                image[x, y] = (left, top) switch
                {
                    (true, true) => Colour(200 + texture - shade / 2, 40 + shade, 40),
                    (false, true) => Colour(40, 180 + texture - shade / 2, 60 + shade),
                    (true, false) => Colour(50 + shade, 60, 190 + texture - shade / 2),
                    _ => Colour(190 + texture - shade / 2, 190 - shade, 30 + shade),
                };
            }
        if (orientation != 1)
        {
            image.Metadata.ExifProfile = new ExifProfile();
            image.Metadata.ExifProfile.SetValue(ExifTag.Orientation, orientation);
        }
        using var stream = new MemoryStream();
        image.SaveAsJpeg(stream, new JpegEncoder { Quality = 90 });
        return stream.ToArray();
    }

    private static Rgb24 Colour(int r, int g, int b) => new((byte)Math.Clamp(r, 0, 255), (byte)Math.Clamp(g, 0, 255), (byte)Math.Clamp(b, 0, 255));

    private static float[] Tensor(byte[] bytes)
    {
        var tensor = new float[ImageTensorWriter.TensorLength(Input)];
        Assert.True(ImageTensorWriter.Write(bytes, Input, tensor, ImageLimits.Default).Ok);
        return tensor;
    }

    /// <summary>The reference: every pixel decoded, then turned and resized.</summary>
    private static float[] FullDecodeTensor(byte[] bytes)
    {
        var tensor = new float[ImageTensorWriter.TensorLength(Input)];
        Assert.True(ImageTensorWriter.Write(bytes, Input, tensor, ImageLimits.Default, scaledDecode: false).Ok);
        return tensor;
    }

    private static double MeanAbsoluteDifference(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Average();
}
