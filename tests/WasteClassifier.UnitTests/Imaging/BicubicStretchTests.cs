using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.UnitTests.Imaging;

/// <summary>The faster resize must give ImageSharp's pixels: the models were trained on them.</summary>
public class BicubicStretchTests
{
    [Theory]
    [InlineData(384, 384, 224, 224)] // the dataset's photos
    [InlineData(480, 270, 224, 224)] // a camera frame decoded at 1/4
    [InlineData(333, 517, 224, 224)] // odd sizes, taller than wide
    [InlineData(100, 60, 224, 224)] // enlarged
    [InlineData(224, 224, 224, 224)] // same size
    [InlineData(7, 5, 3, 2)] // kernels clipped at both edges
    [InlineData(1, 1, 4, 3)]
    [InlineData(640, 480, 64, 48)] // ten times smaller: wide kernels
    public void Resize_NoisyImage_MatchesImageSharpsResize(int sourceWidth, int sourceHeight, int width, int height)
    {
        using var source = Noise(sourceWidth, sourceHeight, seed: sourceWidth * 31 + sourceHeight);
        using var expected = source.Clone(x => x.Resize(new ResizeOptions { Size = new Size(width, height), Mode = ResizeMode.Stretch }));

        using var actual = BicubicStretch.Resize(source, width, height);

        Assert.NotNull(actual);
        var (largest, differing) = Compare(expected, actual);
        // Float rounding in another order can tip a value that lies on a rounding edge by one level; nothing more.
        Assert.True(largest <= 1, $"a channel value differs by {largest} levels");
        Assert.True(differing <= 0.002, $"{differing:P3} of the channel values differ");
    }

    [Fact]
    public void Resize_SmoothGradient_IsExactlyImageSharps()
    {
        using var source = new Image<Rgb24>(384, 384);
        for (var y = 0; y < 384; y++)
            for (var x = 0; x < 384; x++)
                source[x, y] = new Rgb24((byte)(x * 255 / 383), (byte)(y * 255 / 383), (byte)((x + y) * 255 / 766));
        using var expected = source.Clone(x => x.Resize(224, 224));

        using var actual = BicubicStretch.Resize(source, 224, 224);

        Assert.Equal((0, 0.0), Compare(expected, actual!));
    }

    [Theory]
    [InlineData(384, 288, TensorLayout.Nchw, ChannelOrder.Rgb)] // the dataset's photos, the default card
    [InlineData(333, 517, TensorLayout.Nhwc, ChannelOrder.Bgr)]
    [InlineData(100, 60, TensorLayout.Nchw, ChannelOrder.Bgr)] // enlarged
    [InlineData(7, 5, TensorLayout.Nhwc, ChannelOrder.Rgb)]
    public void ResizeInto_AnyLayout_WritesExactlyTheResizedImagesValues(int sourceWidth, int sourceHeight, TensorLayout layout, ChannelOrder order)
    {
        var input = new ModelInputSpec
        {
            Width = 224,
            Height = 160,
            Layout = layout,
            ChannelOrder = order,
            Scale = 1 / 255f,
            Mean = [0.485f, 0.456f, 0.406f],
            Std = [0.229f, 0.224f, 0.225f],
        };
        using var source = Noise(sourceWidth, sourceHeight, seed: sourceWidth);
        using var resized = BicubicStretch.Resize(source, input.Width, input.Height);
        var expected = new float[ImageTensorWriter.TensorLength(input)];
        ImageTensorWriter.CopyPixels(resized!, input, expected);
        var actual = new float[expected.Length];

        Assert.True(BicubicStretch.ResizeInto(source, input, actual));

        Assert.Equal(expected, actual);
    }

    [Fact]
    public void ResizeInto_SourceOverTheLimit_WritesNothing()
    {
        using var source = new Image<Rgb24>(1025, 1024);
        var tensor = new float[3 * 224 * 224];

        Assert.False(BicubicStretch.ResizeInto(source, new ModelInputSpec(), tensor));
        Assert.All(tensor, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Resize_SourceOverTheLimit_LeftToImageSharp()
    {
        using var source = new Image<Rgb24>(1025, 1024);

        Assert.Null(BicubicStretch.Resize(source, 224, 224));
    }

    private static Image<Rgb24> Noise(int width, int height, int seed)
    {
        var random = new Random(seed);
        var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
            for (var x = 0; x < width; x++)
                image[x, y] = new Rgb24((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256));
        return image;
    }

    private static (int Largest, double Differing) Compare(Image<Rgb24> expected, Image<Rgb24> actual)
    {
        Assert.Equal((expected.Width, expected.Height), (actual.Width, actual.Height));
        int largest = 0, differing = 0;
        for (var y = 0; y < expected.Height; y++)
        {
            for (var x = 0; x < expected.Width; x++)
            {
                var (e, a) = (expected[x, y], actual[x, y]);
                foreach (var d in new[] { Math.Abs(e.R - a.R), Math.Abs(e.G - a.G), Math.Abs(e.B - a.B) })
                {
                    largest = Math.Max(largest, d);
                    if (d > 0) differing++;
                }
            }
        }
        return (largest, differing / (3.0 * expected.Width * expected.Height));
    }
}
