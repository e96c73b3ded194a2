using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.Core.Imaging;

/// <summary>
/// Turns untrusted image bytes into a model's input tensor. The size is read from the header first
/// (<see cref="Image.Identify(Configuration, byte[], out IImageFormat)"/>) and anything over the limits is refused before decoding.
/// </summary>
public static class ImageTensorWriter
{
    /// <summary>
    /// Raised whenever the pixels this class produces change for some input (a decoder, a resize, a crop), so that
    /// features extracted from older pixels are not trained on (see <c>FeatureCache</c>). 2: large JPEGs decoded at a
    /// reduced scale and the SIMD resize.
    /// </summary>
    public const int PixelsVersion = 2;

    // Multi-frame formats decode their first frame only: one photo is one classification.
    private static readonly Configuration DecoderConfiguration = CreateConfiguration();

    private static Configuration CreateConfiguration()
    {
        var configuration = Configuration.Default.Clone();
        configuration.ImageFormatsManager.SetDecoder(GifFormat.Instance, new GifDecoder { DecodingMode = FrameDecodingMode.First });
        configuration.ImageFormatsManager.SetDecoder(PngFormat.Instance, new PngDecoder { IgnoreMetadata = true });
        configuration.ImageFormatsManager.SetDecoder(TiffFormat.Instance, new TiffDecoder { DecodingMode = FrameDecodingMode.First });
        return configuration;
    }

    /// <summary>Reads format and size from the header without decoding pixels.</summary>
    public static ImageCheck Inspect(byte[] bytes, ImageLimits limits)
    {
        if (bytes.Length == 0) return ImageCheck.Refused(ImageErrors.Empty, "the file is empty");
        IImageInfo? info;
        IImageFormat? format;
        try
        {
            info = Image.Identify(DecoderConfiguration, bytes, out format);
        }
        catch (NotSupportedException e)
        {
            return ImageCheck.Refused(ImageErrors.Unsupported, $"the image uses a variant this service cannot decode: {e.Message}");
        }
        catch (Exception e) when (IsDecoderFailure(e))
        {
            return ImageCheck.Refused(ImageErrors.Corrupt, $"the image header could not be read: {Describe(e)}");
        }
        if (info is null || format is null)
            return ImageCheck.Refused(ImageErrors.NotAnImage, NotAnImageMessage);
        if (info.Width <= 0 || info.Height <= 0)
            return ImageCheck.Refused(ImageErrors.Corrupt, "the image declares no pixels");
        if (info.Width > limits.MaxSide || info.Height > limits.MaxSide || (long)info.Width * info.Height > limits.MaxPixels)
            return ImageCheck.Refused(ImageErrors.TooManyPixels, $"the image is {info.Width}×{info.Height} pixels; the limit is {limits.MaxPixels:N0} pixels and {limits.MaxSide} per side");
        // ImageSharp 2.1 refuses animated WebP in Identify (NotSupportedException above); a decoder that reads them decodes
        // every frame at canvas size, so the pixel budget covers all frames: a small file cannot ask for frames × canvas.
        var frames = format.Name.Equals("webp", StringComparison.OrdinalIgnoreCase) ? WebpFrames.Count(bytes) : 1;
        if (frames > 1 && (long)info.Width * info.Height * frames > limits.MaxPixels)
            return ImageCheck.Refused(ImageErrors.TooManyPixels, $"the animated image has {frames} frames of {info.Width}×{info.Height} pixels; all frames together are limited to {limits.MaxPixels:N0} pixels");
        // Refused rather than decoded as far as its data goes: a partial image classified counts in a line's composition.
        if (format is JpegFormat && JpegEnd.IsTruncated(bytes))
            return ImageCheck.Refused(ImageErrors.Truncated, TruncatedMessage + "; send the whole file");
        return ImageCheck.Accepted(format.Name.ToLowerInvariant(), info.Width, info.Height);
    }

    /// <summary>
    /// Any decoder exception is this image's problem, not the batch's: a bug in a codec must fail one row, never the
    /// worker. Only out-of-memory and cancellation pass through.
    /// </summary>
    internal static bool IsDecoderFailure(Exception e) => e is not (OutOfMemoryException or OperationCanceledException);

    internal static string Describe(Exception e) =>
        OneLine(e is ImageFormatException or InvalidImageContentException or NotSupportedException or InvalidDataException ? e.Message : $"{e.GetType().Name}: {e.Message}");

    /// <summary>
    /// Why a decode failed, as one line that starts with the error code a classification would get (e.g.
    /// "not_an_image: ..."): ImageSharp's own text for bytes of no known format lists every decoder, one a line.
    /// </summary>
    public static string DescribeFailure(Exception e) => e switch
    {
        UnknownImageFormatException => $"{ImageErrors.NotAnImage}: {NotAnImageMessage}",
        NotSupportedException => $"{ImageErrors.Unsupported}: the image uses a variant this service cannot decode: {OneLine(e.Message)}",
        _ => $"{ImageErrors.Corrupt}: the image could not be decoded: {Describe(e)}",
    };

    public const string TruncatedMessage =
        "the file ends before the image's end (a JPEG without its end-of-image marker): it was cut short, e.g. by an interrupted upload or copy";

    private const string NotAnImageMessage = "the bytes are not an image in a supported format (JPEG, PNG, GIF, BMP, WebP, TIFF, TGA, PBM)";

    private static string OneLine(string message)
    {
        var end = message.IndexOfAny(['\r', '\n']);
        return (end < 0 ? message : message[..end]).Trim();
    }

    /// <summary>
    /// Decodes <paramref name="bytes"/>, resizes as <paramref name="input"/> says and writes
    /// 3 × Height × Width floats into <paramref name="destination"/>.
    /// </summary>
    /// <param name="scaledDecode">False decodes every pixel of a large JPEG too: the reference that the benchmark and tests compare with.</param>
    public static ImageCheck Write(byte[] bytes, ModelInputSpec input, Span<float> destination, ImageLimits limits, bool mirror = false,
        bool scaledDecode = true)
    {
        var check = Inspect(bytes, limits);
        if (!check.Ok) return check;
        try
        {
            var image = DecodeUpright(bytes, input.Width, input.Height, limits, scaledDecode);
            try
            {
                // The worker's path: stretched straight into the tensor, without a resized image in between.
                if (!mirror && input.Resize != "center_crop" && BicubicStretch.ResizeInto(image, input, destination)) return check;
                image = Fit(image, input, input.Width, input.Height, mirror);
                CopyPixels(image, input, destination);
                return check;
            }
            finally
            {
                image.Dispose();
            }
        }
        catch (Exception e) when (IsDecoderFailure(e))
        {
            return ImageCheck.Refused(ImageErrors.Corrupt, $"the image could not be decoded: {Describe(e)}");
        }
    }

    /// <summary>Decodes and resizes to <paramref name="input"/>'s size; for callers that derive several tensors (augmentation).</summary>
    public static Image<Rgb24> LoadResized(ReadOnlySpan<byte> bytes, ModelInputSpec input, int width, int height)
    {
        return Fit(DecodeUpright(bytes, width, height, ImageLimits.Default), input, width, height, mirror: false);
    }

    public static int TensorLength(ModelInputSpec input) => 3 * input.Width * input.Height;

    /// <summary>
    /// Decodes for a resize to <paramref name="width"/> × <paramref name="height"/> (large JPEGs at a reduced scale unless
    /// <paramref name="scaledDecode"/> is false, the rest in full) and turns the image as its EXIF orientation says.
    /// </summary>
    private static Image<Rgb24> DecodeUpright(ReadOnlySpan<byte> bytes, int width, int height, ImageLimits limits, bool scaledDecode = true)
    {
        var image = (scaledDecode ? ScaledJpegDecoder.TryDecode(bytes, width, height, limits) : null) ?? Image.Load<Rgb24>(DecoderConfiguration, bytes);
        try
        {
            if (image.Metadata.ExifProfile is not null) image.Mutate(x => x.AutoOrient());
            return image;
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Resizes an upright image to <paramref name="width"/> × <paramref name="height"/>, mirrored if asked. Returns
    /// the same image, changed in place, or a new one, in which case <paramref name="image"/> is disposed.
    /// </summary>
    private static Image<Rgb24> Fit(Image<Rgb24> image, ModelInputSpec input, int width, int height, bool mirror)
    {
        try
        {
            // Stretching (the default) takes the faster copy of ImageSharp's bicubic resize; cropping, ImageSharp's own.
            if (input.Resize != "center_crop" && BicubicStretch.Resize(image, width, height) is { } resized)
            {
                image.Dispose();
                image = resized;
            }
            else
            {
                image.Mutate(x => x.Resize(new ResizeOptions { Size = new Size(width, height), Mode = input.Resize == "center_crop" ? ResizeMode.Crop : ResizeMode.Stretch }));
            }
            if (mirror) image.Mutate(x => x.Flip(FlipMode.Horizontal));
            return image;
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    /// <summary>Writes an already-sized image: value = (pixel × scale − mean[c]) / std[c], in the card's layout and channel order.</summary>
    public static void CopyPixels(Image<Rgb24> image, ModelInputSpec input, Span<float> destination)
    {
        int width = input.Width, height = input.Height, plane = width * height;
        if (image.Width != width || image.Height != height) throw new ArgumentException("image is not at the model's input size");
        if (destination.Length < 3 * plane) throw new ArgumentException("destination is smaller than one image tensor");

        var normalization = new PixelNormalization(input);
        var pixels = System.Buffers.ArrayPool<Rgb24>.Shared.Rent(plane);
        try
        {
            image.CopyPixelDataTo(pixels.AsSpan(0, plane));
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    var p = pixels[y * width + x];
                    normalization.Write(destination, x, y, p.R, p.G, p.B);
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<Rgb24>.Shared.Return(pixels);
        }
    }
}
