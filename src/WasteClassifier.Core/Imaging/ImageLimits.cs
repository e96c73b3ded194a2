namespace WasteClassifier.Core.Imaging;

/// <summary>Guards applied before any pixel is decoded, so a small file cannot claim gigabytes of memory.</summary>
public sealed record ImageLimits
{
    /// <summary>Largest accepted width × height (default 40 megapixels, above any camera on a sorting line).</summary>
    public long MaxPixels { get; init; } = 40_000_000;

    public int MaxSide { get; init; } = 16_384;

    public static ImageLimits Default { get; } = new();
}
