using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Imaging;

public class ImageTensorWriterTests
{
    private static readonly Rgb24 Orange = new(200, 100, 50);

    [Fact]
    public void Write_NchwRgb_WritesChannelPlanes()
    {
        var spec = new ModelInputSpec { Width = 4, Height = 4, Layout = TensorLayout.Nchw };
        var tensor = new float[48];

        var check = ImageTensorWriter.Write(TestImages.SolidPng(8, 8, Orange), spec, tensor, ImageLimits.Default);

        Assert.True(check.Ok);
        Assert.All(tensor[..16], v => Assert.Equal(200f, v, 1f));
        Assert.All(tensor[16..32], v => Assert.Equal(100f, v, 1f));
        Assert.All(tensor[32..], v => Assert.Equal(50f, v, 1f));
    }

    [Fact]
    public void Write_NhwcBgrScaled_InterleavesReversedChannels()
    {
        var spec = new ModelInputSpec { Width = 4, Height = 4, Layout = TensorLayout.Nhwc, ChannelOrder = ChannelOrder.Bgr, Scale = 1 / 255f };
        var tensor = new float[48];

        ImageTensorWriter.Write(TestImages.SolidPng(8, 8, Orange), spec, tensor, ImageLimits.Default);

        Assert.Equal(50 / 255f, tensor[0], 0.01f);
        Assert.Equal(100 / 255f, tensor[1], 0.01f);
        Assert.Equal(200 / 255f, tensor[2], 0.01f);
        Assert.Equal(50 / 255f, tensor[3], 0.01f);
    }

    [Fact]
    public void Write_MeanAndStd_NormalisesPerChannel()
    {
        var spec = new ModelInputSpec { Width = 2, Height = 2, Mean = [100, 100, 100], Std = [50, 25, 10] };
        var tensor = new float[12];

        ImageTensorWriter.Write(TestImages.SolidPng(2, 2, Orange), spec, tensor, ImageLimits.Default);

        Assert.Equal(2f, tensor[0], 0.05f);
        Assert.Equal(0f, tensor[4], 0.05f);
        Assert.Equal(-5f, tensor[8], 0.2f);
    }

    [Fact]
    public void Write_Mirror_SwapsLeftAndRight()
    {
        var spec = new ModelInputSpec { Width = 4, Height = 4 };
        var tensor = new float[48];
        var png = TestImages.SplitPng(4, 4, new Rgb24(255, 0, 0), new Rgb24(0, 0, 255));

        ImageTensorWriter.Write(png, spec, tensor, ImageLimits.Default, mirror: true);

        Assert.True(tensor[0] < 10, "left edge should now be blue (no red)");
        Assert.True(tensor[3] > 245, "right edge should now be red");
    }

    [Fact]
    public void Write_EmptyBytes_RefusedAsEmpty()
    {
        var check = ImageTensorWriter.Write([], new ModelInputSpec(), new float[3 * 224 * 224], ImageLimits.Default);

        Assert.False(check.Ok);
        Assert.Equal(ImageErrors.Empty, check.Error);
    }

    [Fact]
    public void Write_GarbageBytes_RefusedAsNotAnImage()
    {
        var garbage = new byte[1000];
        new Random(1).NextBytes(garbage);

        var check = ImageTensorWriter.Write(garbage, new ModelInputSpec(), new float[3 * 224 * 224], ImageLimits.Default);

        Assert.False(check.Ok);
        Assert.Contains(check.Error, new[] { ImageErrors.NotAnImage, ImageErrors.Corrupt });
    }

    [Fact]
    public void Inspect_PngDeclaring30000Square_RefusedBeforeDecoding()
    {
        var bomb = HostileImages.PngHeaderOnly(30000, 30000);

        var check = ImageTensorWriter.Inspect(bomb, ImageLimits.Default);

        Assert.False(check.Ok);
        Assert.Equal(ImageErrors.TooManyPixels, check.Error);
    }
}
