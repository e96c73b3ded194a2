using WasteClassifier.Core.Training;

namespace WasteClassifier.UnitTests.Support;

/// <summary>Small deterministic heads and features for tests that must not depend on a trained model.</summary>
public static class TinyHeads
{
    public static HeadModel Random(int featureWidth, int hidden, int outputs, int seed = 7)
    {
        var random = new Random(seed);
        float[] Values(int n, float scale) => Enumerable.Range(0, n).Select(_ => (random.NextSingle() - 0.5f) * scale).ToArray();
        var mean = Values(featureWidth, 0.01f);
        var std = Enumerable.Range(0, featureWidth).Select(_ => 0.02f + random.NextSingle() * 0.02f).ToArray();
        return new HeadModel(featureWidth, true, mean, std,
        [
            new DenseLayer(featureWidth, hidden, Values(hidden * featureWidth, 0.2f), Values(hidden, 0.1f), true),
            new DenseLayer(hidden, outputs, Values(outputs * hidden, 0.2f), Values(outputs, 0.1f), false),
        ]);
    }

    /// <summary>Gaussian clusters, one per label in <paramref name="labelsWithData"/>.</summary>
    public static List<LabelledFeatures> Clusters(int width, int[] labelsWithData, int perLabel, int seed = 3)
    {
        var random = new Random(seed);
        var centres = labelsWithData.ToDictionary(l => l, _ => Enumerable.Range(0, width).Select(_ => random.NextSingle() * 4).ToArray());
        return labelsWithData
            .SelectMany(l => Enumerable.Range(0, perLabel).Select(_ => new LabelledFeatures(
                centres[l].Select(c => c + (random.NextSingle() - 0.5f)).ToArray(), l)))
            .ToList();
    }
}
