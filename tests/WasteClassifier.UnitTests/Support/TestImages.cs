using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace WasteClassifier.UnitTests.Support;

public static class TestImages
{
    /// <summary>A PNG filled with one colour.</summary>
    public static byte[] SolidPng(int width, int height, Rgb24 colour)
    {
        using var image = new Image<Rgb24>(width, height, colour);
        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        return stream.ToArray();
    }

    /// <summary>A PNG whose left half is <paramref name="left"/> and right half <paramref name="right"/>.</summary>
    public static byte[] SplitPng(int width, int height, Rgb24 left, Rgb24 right)
    {
        using var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
            for (var x = 0; x < width; x++)
                image[x, y] = x < width / 2 ? left : right;
        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        return stream.ToArray();
    }
}
