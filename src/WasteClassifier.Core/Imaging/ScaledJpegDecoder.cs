using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SkiaSharp;

namespace WasteClassifier.Core.Imaging;

/// <summary>
/// Decodes a JPEG much larger than the size it is headed for (a 1920×1080 camera frame for a 224×224 model) at 1/2, 1/4
/// or 1/8 of its size, with libjpeg-turbo's scaled IDCT through SkiaSharp: most of a full decode's work is pixels that the
/// resize then throws away, and ImageSharp 2.1 cannot decode at a reduced scale. The result still covers the target on
/// both sides, so the resize that follows only has less to shrink.
/// </summary>
public static class ScaledJpegDecoder
{
    // Scales with dedicated IDCTs in libjpeg-turbo, smallest first.
    private static readonly float[] Scales = [1 / 8f, 1 / 4f, 1 / 2f];

    // Set when this platform has no libSkiaSharp (Directory.Build.targets keeps the served platforms' only): every
    // image is then decoded in full, without paying for the failed load again.
    private static volatile bool _unavailable;

    /// <summary>
    /// The image at the smallest scale that still covers <paramref name="width"/> × <paramref name="height"/> once oriented,
    /// with its EXIF orientation carried over for <c>AutoOrient</c>. Null when the bytes are not a JPEG, no scale below 1
    /// covers the target, or the decode is not complete: the caller then decodes in full, which reports any fault.
    /// </summary>
    /// <param name="limits">
    /// Checked again on the size libjpeg-turbo reads: the caller checked the size that ImageSharp read, and two parsers of
    /// one crafted file need not agree.
    /// </param>
    public static Image<Rgb24>? TryDecode(ReadOnlySpan<byte> bytes, int width, int height, ImageLimits limits)
    {
        if (_unavailable || !IsJpeg(bytes)) return null;
        try
        {
            using var data = SKData.CreateCopy(bytes);
            using var codec = SKCodec.Create(data);
            if (codec is null || codec.EncodedFormat != SKEncodedImageFormat.Jpeg) return null;
            var (storedWidth, storedHeight) = (codec.Info.Width, codec.Info.Height);
            if (storedWidth > limits.MaxSide || storedHeight > limits.MaxSide || (long)storedWidth * storedHeight > limits.MaxPixels) return null;

            var origin = codec.EncodedOrigin;
            var size = SmallestCovering(codec, width, height, SwapsAxes(origin));
            if (size is not { } scaled) return null;
            var info = new SKImageInfo(scaled.Width, scaled.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
            if (codec.GetPixels(info, out var pixels) != SKCodecResult.Success) return null;

            using var rgba = Image.LoadPixelData<Rgba32>(pixels, scaled.Width, scaled.Height);
            var image = rgba.CloneAs<Rgb24>();
            if (origin != SKEncodedOrigin.TopLeft)
            {
                // SKEncodedOrigin's values are EXIF's orientation values; AutoOrient then turns the image as for a full decode.
                image.Metadata.ExifProfile = new ExifProfile();
                image.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)origin);
            }
            return image;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or TypeInitializationException)
        {
            _unavailable = true;
            return null;
        }
        catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException))
        {
            return null;
        }
    }

    private static bool IsJpeg(ReadOnlySpan<byte> bytes) => bytes.Length > 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;

    // Orientations 5 to 8 turn the image a quarter: its stored width becomes the shown height.
    private static bool SwapsAxes(SKEncodedOrigin origin) => origin >= SKEncodedOrigin.LeftTop;

    private static SKSizeI? SmallestCovering(SKCodec codec, int width, int height, bool swapAxes)
    {
        var (needWidth, needHeight) = swapAxes ? (height, width) : (width, height);
        foreach (var scale in Scales)
        {
            var size = codec.GetScaledDimensions(scale);
            if (size.Width >= needWidth && size.Height >= needHeight && size.Width < codec.Info.Width) return size;
        }
        return null;
    }
}
