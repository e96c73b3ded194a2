namespace WasteClassifier.Core.Training;

/// <summary>Hyperparameters of <see cref="HeadTrainer"/>; recorded in the model card.</summary>
public sealed record HeadTrainingOptions
{
    /// <summary><c>mlp</c> (one hidden ReLU layer) or <c>softmax</c> (linear softmax regression).</summary>
    public string HeadType { get; init; } = "mlp";
    public int HiddenUnits { get; init; } = 256;
    public int Epochs { get; init; } = 60;
    public int BatchSize { get; init; } = 64;
    public float LearningRate { get; init; } = 1e-3f;

    /// <summary>Decoupled (AdamW) weight decay on weights, not biases.</summary>
    public float WeightDecay { get; init; } = 1e-4f;
    public float InputDropout { get; init; } = 0.2f;
    public float HiddenDropout { get; init; } = 0.5f;
    public float LabelSmoothing { get; init; } = 0.1f;
    public bool L2Normalise { get; init; } = true;
    public bool ClassWeighted { get; init; } = true;
    public int Seed { get; init; } = 42;

    public bool HasHiddenLayer => HeadType switch
    {
        "mlp" => true,
        "softmax" => false,
        _ => throw new ArgumentException($"unknown head type '{HeadType}' (mlp, softmax)"),
    };
}
