using WasteClassifier.Core.Inference;

namespace WasteClassifier.Core.Training;

/// <summary>A fully connected layer: output = W·input + b (W row-major, Outputs × Inputs), then ReLU if set.</summary>
public sealed record DenseLayer(int Inputs, int Outputs, float[] Weights, float[] Bias, bool Relu)
{
    public float[] Forward(float[] input)
    {
        var output = new float[Outputs];
        for (var o = 0; o < Outputs; o++)
        {
            var value = VectorMath.Dot(Weights.AsSpan(o * Inputs, Inputs), input) + Bias[o];
            output[o] = Relu ? MathF.Max(0, value) : value;
        }
        return output;
    }
}

/// <summary>
/// A trained classifier head over backbone features: optional L2 normalisation, standardisation
/// ((x − mean) / std), dense layers, softmax. The C# forward pass mirrors the exported ONNX graph.
/// </summary>
public sealed record HeadModel(int FeatureWidth, bool L2Normalise, float[] Mean, float[] Std, IReadOnlyList<DenseLayer> Layers)
{
    public int Outputs => Layers[^1].Outputs;

    public float[] Normalise(float[] features)
    {
        var scale = 1f;
        if (L2Normalise) scale = 1f / MathF.Max(MathF.Sqrt(VectorMath.Dot(features, features)), 1e-12f);
        var result = new float[features.Length];
        for (var i = 0; i < result.Length; i++) result[i] = (features[i] * scale - Mean[i]) / Std[i];
        return result;
    }

    public float[] Logits(float[] normalised)
    {
        var activation = normalised;
        foreach (var layer in Layers) activation = layer.Forward(activation);
        return activation;
    }

    public float[] Predict(float[] features)
    {
        var scores = Logits(Normalise(features));
        Softmax.InPlace(scores);
        return scores;
    }
}
