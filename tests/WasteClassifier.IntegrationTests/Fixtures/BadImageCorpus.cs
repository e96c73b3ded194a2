using System.Buffers.Binary;
using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>
/// Hostile and unusual images, generated here (no real data): each entry says what the service must do with it —
/// refuse it at the API with a code, or accept it and end its row completed or failed with a reason.
/// </summary>
public static class BadImageCorpus
{
    /// <summary><paramref name="RefusedWith"/>: the API's error code; null when the file passes the header check.</summary>
    public sealed record Entry(string Name, string FileName, string ContentType, byte[] Content, string? RefusedWith, string? WorkerFailsWith = null)
    {
        public override string ToString() => Name;
    }

    public static IReadOnlyList<Entry> Create()
    {
        var photo = Jpeg(Gradient<Rgb24>(640, 480));
        var png = Png(Gradient<Rgb24>(320, 240));
        return
        [
            new("zero bytes", "zero.jpg", "image/jpeg", [], "empty_file"),
            new("random bytes named .jpg", "random.jpg", "image/jpeg", Random(20_000, seed: 1), "not_an_image"),
            new("truncated JPEG", "truncated.jpg", "image/jpeg", photo[..(photo.Length / 3)], "truncated_image", "truncated_image"),
            new("header-only JPEG", "hdr.jpg", "image/jpeg", photo[..700], "truncated_image", "truncated_image"),
            new("JPEG header then random bytes", "noise.jpg", "image/jpeg", [.. photo[..2000], .. RandomWithoutJpegEnd(30_000, seed: 2)], "truncated_image",
                "truncated_image"),
            new("truncated PNG", "truncated.png", "image/png", png[..(png.Length / 2)], null),
            new("PNG declaring 30000x30000", "bomb.png", "image/png", HostileImages.PngHeaderOnly(30000, 30000), "image_too_large", "image_too_large"),
            new("huge EXIF", "exif.jpg", "image/jpeg", HugeExifJpeg(), null),
            new("CMYK JPEG", "cmyk.jpg", "image/jpeg", Jpeg(Gradient<Rgb24>(200, 150), JpegColorType.Cmyk), null),
            new("16-bit PNG", "deep.png", "image/png", SixteenBitPng(), null),
            new("grayscale JPEG", "gray.jpg", "image/jpeg", Jpeg(Gradient<Rgb24>(200, 150), JpegColorType.Luminance), null),
            new("grayscale PNG", "gray.png", "image/png", GrayPng(), null),
            new("animated GIF", "anim.gif", "image/gif", AnimatedGif(frames: 6), null),
            new("WebP", "still.webp", "image/webp", Webp(Gradient<Rgb24>(200, 150), WebpFileFormatType.Lossy), null),
            new("animated WebP", "anim.webp", "image/webp", AnimatedWebp(64, 64, frames: 4), "unsupported_image", "unsupported_image"),
            new("animated WebP over the pixel budget", "anim-bomb.webp", "image/webp", AnimatedWebp(4000, 4000, frames: 12), "unsupported_image", "unsupported_image"),
            new("PNG whose content type says JPEG", "lies.jpg", "image/jpeg", png, null),
            new("text whose content type says PNG", "lies.png", "image/png", Encoding.UTF8.GetBytes("<html><body>not an image</body></html>"), "not_an_image"),
        ];
    }

    public static byte[] Random(int length, int seed)
    {
        var bytes = new byte[length];
        new System.Random(seed).NextBytes(bytes);
        bytes[0] = 0x42; // never a valid magic number by accident
        return bytes;
    }

    /// <summary>Random bytes without FF D9, which would end a JPEG they follow.</summary>
    private static byte[] RandomWithoutJpegEnd(int length, int seed)
    {
        var bytes = Random(length, seed);
        for (var i = 1; i < bytes.Length; i++)
            if (bytes[i - 1] == 0xFF && bytes[i] == 0xD9) bytes[i] = 0xD8;
        return bytes;
    }

    public static Image<TPixel> Gradient<TPixel>(int width, int height) where TPixel : unmanaged, IPixel<TPixel>
    {
        var image = new Image<TPixel>(width, height);
        for (var y = 0; y < height; y++)
            for (var x = 0; x < width; x++)
            {
                var pixel = default(TPixel);
                pixel.FromRgba32(new Rgba32((byte)(x * 255 / width), (byte)(y * 255 / height), (byte)((x + y) % 256)));
                image[x, y] = pixel;
            }
        return image;
    }

    private static byte[] Jpeg(Image image, JpegColorType? color = null)
    {
        using (image)
        using (var stream = new MemoryStream())
        {
            image.SaveAsJpeg(stream, new JpegEncoder { Quality = 85, ColorType = color });
            return stream.ToArray();
        }
    }

    private static byte[] Png(Image image)
    {
        using (image)
        using (var stream = new MemoryStream())
        {
            image.SaveAsPng(stream);
            return stream.ToArray();
        }
    }

    private static byte[] Webp(Image image, WebpFileFormatType type)
    {
        using (image)
        using (var stream = new MemoryStream())
        {
            image.SaveAsWebp(stream, new WebpEncoder { FileFormat = type });
            return stream.ToArray();
        }
    }

    private static byte[] HugeExifJpeg()
    {
        using var image = Gradient<Rgb24>(320, 240);
        var exif = new ExifProfile();
        // Near the 64 KB a JPEG APP1 segment can hold.
        exif.SetValue(ExifTag.ImageDescription, new string('x', 60_000));
        exif.SetValue(ExifTag.Make, new string('m', 2_000));
        image.Metadata.ExifProfile = exif;
        using var stream = new MemoryStream();
        image.SaveAsJpeg(stream);
        return stream.ToArray();
    }

    private static byte[] SixteenBitPng()
    {
        using var image = Gradient<Rgba64>(200, 150);
        using var stream = new MemoryStream();
        image.SaveAsPng(stream, new PngEncoder { BitDepth = PngBitDepth.Bit16, ColorType = PngColorType.RgbWithAlpha });
        return stream.ToArray();
    }

    private static byte[] GrayPng()
    {
        using var image = Gradient<L8>(200, 150);
        using var stream = new MemoryStream();
        image.SaveAsPng(stream, new PngEncoder { ColorType = PngColorType.Grayscale });
        return stream.ToArray();
    }

    private static byte[] AnimatedGif(int frames)
    {
        using var image = Gradient<Rgba32>(120, 90);
        for (var i = 1; i < frames; i++)
        {
            using var frame = Gradient<Rgba32>(120, 90);
            frame.Shift(i);
            image.Frames.AddFrame(frame.Frames.RootFrame);
        }
        using var stream = new MemoryStream();
        image.SaveAsGif(stream, new GifEncoder());
        return stream.ToArray();
    }

    private static void Shift(this Image<Rgba32> image, int shift)
    {
        for (var y = 0; y < image.Height; y++)
            for (var x = 0; x < image.Width; x++)
            {
                var p = image[x, y];
                image[x, y] = new Rgba32((byte)(p.R + shift * 30), p.G, p.B);
            }
    }

    /// <summary>
    /// An animated WebP built by hand (ImageSharp 2.1 cannot encode one): VP8X with the animation flag, ANIM, then
    /// <paramref name="frames"/> ANMF chunks each holding the same small lossless frame, on a canvas of the given size.
    /// </summary>
    public static byte[] AnimatedWebp(int canvasWidth, int canvasHeight, int frames)
    {
        var still = Webp(Gradient<Rgb24>(64, 64), WebpFileFormatType.Lossless);
        var vp8l = FindChunk(still, "VP8L");
        using var body = new MemoryStream();
        body.Write("WEBP"u8);
        var vp8x = new byte[10];
        vp8x[0] = 0x02; // animation
        Write24(vp8x.AsSpan(4), canvasWidth - 1);
        Write24(vp8x.AsSpan(7), canvasHeight - 1);
        Chunk(body, "VP8X", vp8x);
        Chunk(body, "ANIM", [0, 0, 0, 0, 0, 0]); // background colour, loop forever
        for (var i = 0; i < frames; i++)
        {
            using var frame = new MemoryStream();
            var header = new byte[16];
            Write24(header.AsSpan(0), 0); // x / 2
            Write24(header.AsSpan(3), 0); // y / 2
            Write24(header.AsSpan(6), 64 - 1);
            Write24(header.AsSpan(9), 64 - 1);
            Write24(header.AsSpan(12), 100); // duration ms
            header[15] = 0;
            frame.Write(header);
            Chunk(frame, "VP8L", vp8l);
            Chunk(body, "ANMF", frame.ToArray());
        }
        using var file = new MemoryStream();
        file.Write("RIFF"u8);
        Span<byte> size = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(size, (uint)body.Length);
        file.Write(size);
        file.Write(body.ToArray());
        return file.ToArray();
    }

    private static byte[] FindChunk(byte[] webp, string name)
    {
        var position = 12;
        while (position + 8 <= webp.Length)
        {
            var size = (int)BinaryPrimitives.ReadUInt32LittleEndian(webp.AsSpan(position + 4));
            if (Encoding.ASCII.GetString(webp, position, 4) == name) return webp.AsSpan(position + 8, size).ToArray();
            position += 8 + size + (size & 1);
        }
        throw new InvalidOperationException($"no {name} chunk");
    }

    private static void Chunk(Stream stream, string name, byte[] data)
    {
        stream.Write(Encoding.ASCII.GetBytes(name));
        Span<byte> size = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(size, (uint)data.Length);
        stream.Write(size);
        stream.Write(data);
        if ((data.Length & 1) == 1) stream.WriteByte(0);
    }

    private static void Write24(Span<byte> destination, int value)
    {
        destination[0] = (byte)value;
        destination[1] = (byte)(value >> 8);
        destination[2] = (byte)(value >> 16);
    }
}
