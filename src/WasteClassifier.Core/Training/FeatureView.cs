using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.Core.Training;

public enum CropAnchor { Center, TopLeft, TopRight, BottomLeft, BottomRight }

/// <summary>
/// One deterministic rendering of a training image (an augmentation): resized to <see cref="Zoom"/> × the input size,
/// cropped back to the input size at <see cref="Anchor"/>, optionally mirrored. Its <see cref="Name"/> keys the feature cache.
/// </summary>
public sealed record FeatureView(string Name, float Zoom, CropAnchor Anchor, bool Mirror)
{
    /// <summary>Exactly what inference sees.</summary>
    public static FeatureView Original { get; } = new("full", 1f, CropAnchor.Center, false);

    public static FeatureView Mirrored { get; } = new("full-flip", 1f, CropAnchor.Center, true);

    /// <summary>Five crops of a 1.15× enlargement, plain and mirrored: mild scale and position jitter.</summary>
    public static IReadOnlyList<FeatureView> Crops { get; } =
        Enum.GetValues<CropAnchor>()
            .SelectMany(a => new[] { new FeatureView($"crop115-{a}", 1.15f, a, false), new FeatureView($"crop115-{a}-flip", 1.15f, a, true) })
            .ToList();

    public static IReadOnlyList<FeatureView> ForAugmentation(string augmentation) => augmentation switch
    {
        "none" => [Original],
        "flip" => [Original, Mirrored],
        "crops" => [Original, Mirrored, .. Crops],
        _ => throw new ArgumentException($"unknown augmentation '{augmentation}' (none, flip, crops)"),
    };

    /// <summary>Renders this view of <paramref name="bytes"/> into <paramref name="destination"/> as <paramref name="input"/> says.</summary>
    public void Render(ReadOnlySpan<byte> bytes, ModelInputSpec input, Span<float> destination)
    {
        var width = (int)MathF.Round(input.Width * Zoom);
        var height = (int)MathF.Round(input.Height * Zoom);
        using var image = ImageTensorWriter.LoadResized(bytes, input, width, height);
        var (x, y) = Anchor switch
        {
            CropAnchor.TopLeft => (0, 0),
            CropAnchor.TopRight => (width - input.Width, 0),
            CropAnchor.BottomLeft => (0, height - input.Height),
            CropAnchor.BottomRight => (width - input.Width, height - input.Height),
            _ => ((width - input.Width) / 2, (height - input.Height) / 2),
        };
        image.Mutate(m =>
        {
            if (width != input.Width || height != input.Height) m.Crop(new Rectangle(x, y, input.Width, input.Height));
            if (Mirror) m.Flip(FlipMode.Horizontal);
        });
        ImageTensorWriter.CopyPixels(image, input, destination);
    }
}
