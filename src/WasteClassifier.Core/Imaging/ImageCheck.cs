namespace WasteClassifier.Core.Imaging;

/// <summary>Result of looking at image bytes: either the format and size, or why they were refused.</summary>
public sealed record ImageCheck(bool Ok, string? Format, int Width, int Height, string? Error, string? Message)
{
    public static ImageCheck Accepted(string format, int width, int height) => new(true, format, width, height, null, null);

    public static ImageCheck Refused(string error, string message) => new(false, null, 0, 0, error, message);
}

/// <summary>Machine-readable reasons an image is refused; the same strings appear in API errors and failed rows.</summary>
public static class ImageErrors
{
    public const string Empty = "empty_file";
    public const string NotAnImage = "not_an_image";
    public const string TooManyPixels = "image_too_large";
    public const string Corrupt = "corrupt_image";

    /// <summary>A format variant the decoder cannot read (e.g. animated WebP in ImageSharp 2.1).</summary>
    public const string Unsupported = "unsupported_image";

    /// <summary>A JPEG that ends before its end-of-image marker (see <see cref="JpegEnd"/>): only part of the image is there.</summary>
    public const string Truncated = "truncated_image";
}
