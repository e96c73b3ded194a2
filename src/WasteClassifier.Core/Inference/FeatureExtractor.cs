using Google.Protobuf;

namespace WasteClassifier.Core.Inference;

/// <summary>
/// A backbone without a head: image tensors (laid out as <see cref="BackboneDefinition.Input"/>) → feature vectors.
/// Used to train heads. Calls are serialised like <see cref="OnnxImageClassifier"/>.
/// </summary>
public sealed class FeatureExtractor : IDisposable
{
    private readonly BatchRunner runner;

    private FeatureExtractor(BackboneDefinition backbone, BatchRunner runner)
    {
        Backbone = backbone;
        this.runner = runner;
    }

    public BackboneDefinition Backbone { get; }

    public static FeatureExtractor Create(BackboneDefinition backbone, InferenceOptions? options = null)
    {
        options ??= InferenceOptions.Default;
        var session = OnnxSessionFactory.Create(() => BackboneGraphComposer.ComposeFeatureExtractor(backbone, options.BackbonesRoot).ToByteArray(), options);
        return new FeatureExtractor(backbone, new BatchRunner(session, BackboneGraphComposer.ImageInput, BackboneGraphComposer.FeaturesOutput, options));
    }

    /// <summary>Returns <paramref name="count"/> rows of <see cref="BackboneDefinition.FeatureWidth"/> floats.</summary>
    public float[][] Extract(ReadOnlyMemory<float> batch, int count) =>
        runner.Run(batch, OnnxImageClassifier.BatchShape(Backbone.Input, count));

    public void Dispose() => runner.Dispose();
}
