using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.PixelFormats;

namespace WasteClassifier.LoadTesting.Images;

/// <summary>The images of a run, handed out round-robin: read from a folder, or generated.</summary>
public sealed class ImageSet
{
    private static readonly string[] Extensions = [".jpg", ".jpeg", ".png"];
    private readonly IReadOnlyList<TestImage> _images;
    private int _next = -1;

    public ImageSet(IReadOnlyList<TestImage> images)
    {
        if (images.Count == 0) throw new ArgumentException("no images to send");
        _images = images;
    }

    public IReadOnlyList<TestImage> All => _images;

    /// <summary>The first image <see cref="UniqueStamp"/> cannot stamp (neither JPEG nor PNG), if any.</summary>
    public TestImage? FirstUnstampable() => _images.FirstOrDefault(i => !UniqueStamp.CanStamp(i.Content));

    /// <summary>The images, each made new content once (<see cref="UniqueStamp"/>; all must be JPEG or PNG): a run's own, which no other run stores.</summary>
    public ImageSet StampedOnce() => new(_images.Select(i => i with { Content = UniqueStamp.Apply(i.Content, Guid.NewGuid()) }).ToList());

    public TestImage Next() => _images[(int)((uint)Interlocked.Increment(ref _next) % (uint)_images.Count)];

    /// <summary>Up to <paramref name="limit"/> images from <paramref name="folder"/> (recursively), spread evenly over its sorted files.</summary>
    public static ImageSet FromFolder(string folder, int limit)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"image folder not found: {folder}");
        var files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new FileNotFoundException($"no .jpg or .png files under {folder}");
        var step = Math.Max(1.0, files.Count / (double)limit);
        var picked = Enumerable.Range(0, Math.Min(limit, files.Count)).Select(i => files[(int)(i * step)]);
        return new ImageSet(picked.Select(f => new TestImage(Path.GetFileName(f), File.ReadAllBytes(f), ContentTypeOf(f))).ToList());
    }

    /// <summary><paramref name="count"/> distinct JPEGs of the given size: smooth colour fields with noise, about as hard to decode as photographs.</summary>
    public static ImageSet Generated(int count, int width, int height, int seed = 7) =>
        new(Enumerable.Range(0, count).Select(i => new TestImage($"generated-{width}x{height}-{i:D4}.jpg", Jpeg(width, height, seed + i), "image/jpeg")).ToList());

    public static byte[] Jpeg(int width, int height, int seed)
    {
        var random = new Random(seed);
        using var image = new Image<Rgb24>(width, height);
        int r0 = random.Next(256), g0 = random.Next(256), b0 = random.Next(256);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    var noise = random.Next(-24, 25);
                    row[x] = new Rgb24(Clamp(r0 + x * 128 / width + noise), Clamp(g0 + y * 128 / height + noise), Clamp(b0 - x * 64 / width + noise));
                }
            }
        });
        using var stream = new MemoryStream();
        image.SaveAsJpeg(stream, new JpegEncoder { Quality = 85 });
        return stream.ToArray();
    }

    private static byte Clamp(int value) => (byte)Math.Clamp(value, 0, 255);

    private static string ContentTypeOf(string path) => Path.GetExtension(path).Equals(".png", StringComparison.OrdinalIgnoreCase) ? "image/png" : "image/jpeg";
}
