namespace WasteClassifier.Core.Inference;

/// <summary>A loaded model: turns a batch of preprocessed images into one probability row per image, in one runtime call.</summary>
public interface IImageClassifier : IDisposable
{
    ModelCard Card { get; }

    /// <summary>
    /// <paramref name="batch"/> holds <paramref name="count"/> images laid out as <see cref="ModelCard.Input"/> says
    /// (count × 3 × H × W floats). Returns count rows of probabilities over <see cref="ModelCard.Labels"/>.
    /// </summary>
    float[][] Classify(ReadOnlyMemory<float> batch, int count);
}
