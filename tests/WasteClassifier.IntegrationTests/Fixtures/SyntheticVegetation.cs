using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>
/// Stand-ins for vegetation photographs (waste-v1 has none): leaf-shaped green ellipses over soil, each image from
/// its own seed. Similar to one another and unlike any class in the dataset.
/// </summary>
public static class SyntheticVegetation
{
    public static byte[] Jpeg(int seed, int size = 256)
    {
        var random = new Random(seed);
        using var image = new Image<Rgb24>(size, size);
        var leaves = Enumerable.Range(0, 40).Select(_ => (
            X: random.Next(size), Y: random.Next(size), A: 8 + random.Next(30), B: 4 + random.Next(12), Angle: random.NextDouble() * Math.PI,
            Colour: new Rgb24((byte)(20 + random.Next(60)), (byte)(110 + random.Next(120)), (byte)(10 + random.Next(50))))).ToList();
        for (var y = 0; y < size; y++)
        {
            for (var x = 0; x < size; x++)
            {
                var soil = random.Next(30);
                var pixel = new Rgb24((byte)(70 + soil), (byte)(50 + soil), (byte)(25 + soil / 2));
                foreach (var leaf in leaves)
                {
                    double dx = x - leaf.X, dy = y - leaf.Y;
                    double u = dx * Math.Cos(leaf.Angle) + dy * Math.Sin(leaf.Angle), v = -dx * Math.Sin(leaf.Angle) + dy * Math.Cos(leaf.Angle);
                    if (u * u / (leaf.A * leaf.A) + v * v / (leaf.B * leaf.B) <= 1) pixel = leaf.Colour;
                }
                image[x, y] = pixel;
            }
        }
        using var stream = new MemoryStream();
        image.SaveAsJpeg(stream);
        return stream.ToArray();
    }
}
