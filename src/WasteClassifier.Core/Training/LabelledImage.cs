using System.Security.Cryptography;

namespace WasteClassifier.Core.Training;

/// <summary>An image's bytes with its label index; <see cref="Path"/> names it in logs (a file path or an object key).</summary>
public sealed record LabelledImage(string Path, int Label, byte[] Sha256, byte[] Bytes)
{
    public static LabelledImage From(string name, int label, byte[] bytes) => new(name, label, SHA256.HashData(bytes), bytes);

    /// <summary>
    /// One image per content: of images with the same bytes the last one given wins (its label: a later sample corrects
    /// an earlier one), in the first one's place. A training job and <c>wastectl train</c> both train on this, so the same
    /// folder gives them the same images per label and <c>training.data_fingerprint</c>.
    /// </summary>
    public static List<LabelledImage> DistinctByContent(IEnumerable<LabelledImage> images)
    {
        var byContent = new Dictionary<string, LabelledImage>();
        foreach (var image in images) byContent[Convert.ToHexString(image.Sha256)] = image;
        return [.. byContent.Values];
    }
}
