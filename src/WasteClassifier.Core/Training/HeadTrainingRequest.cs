using WasteClassifier.Core.Inference;

namespace WasteClassifier.Core.Training;

/// <summary>Everything one head-training run needs.</summary>
public sealed record HeadTrainingRequest
{
    public required string DatasetDirectory { get; init; }
    public required string CacheDirectory { get; init; }
    public IReadOnlyList<string> Labels { get; init; } = WasteLabels.All;
    public BackboneDefinition Backbone { get; init; } = BackboneDefinition.ResNet18MultiScale;
    public HeadTrainingOptions Head { get; init; } = new();

    /// <summary>Training views per image: <c>none</c>, <c>flip</c> or <c>crops</c> (see <see cref="FeatureView.ForAugmentation"/>).</summary>
    public string Augmentation { get; init; } = "flip";

    /// <summary>Tuning mode: train without a validation bucket of the training side and report on it; the hold-out stays unseen.</summary>
    public bool Validate { get; init; }

    public InferenceOptions Inference { get; init; } = InferenceOptions.Default;
}
