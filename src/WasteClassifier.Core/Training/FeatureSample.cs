namespace WasteClassifier.Core.Training;

/// <summary>One labelled image's features, per rendered view (see <see cref="FeatureView"/>).</summary>
public sealed record FeatureSample(string Path, int Label, byte[] Sha256, bool IsHoldOut, IReadOnlyDictionary<string, float[]> Views)
{
    public float[] Original => Views[FeatureView.Original.Name];
}
