namespace WasteClassifier.Core.Inference;

/// <summary>
/// One ONNX Runtime session that maps a batch of image tensors to probabilities over the card's labels.
/// Safe to call from several threads; at most <see cref="InferenceOptions.ConcurrentRuns"/> calls run at once, the rest wait.
/// Create it with <see cref="ModelLoader"/>.
/// </summary>
public sealed class OnnxImageClassifier : IImageClassifier
{
    private readonly BatchRunner runner;
    private readonly bool applySoftmax;

    internal OnnxImageClassifier(ModelCard card, BatchRunner runner, bool applySoftmax)
    {
        Card = card;
        this.runner = runner;
        this.applySoftmax = applySoftmax;
    }

    public ModelCard Card { get; }

    public float[][] Classify(ReadOnlyMemory<float> batch, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var rows = runner.Run(batch, BatchShape(Card.Input, count));
        foreach (var row in rows)
        {
            if (row.Length != Card.Labels.Count)
                throw new InvalidDataException($"model {Card.Version} returned {row.Length} scores for {Card.Labels.Count} labels");
            if (applySoftmax) Softmax.InPlace(row);
        }
        return rows;
    }

    /// <summary>Runs one blank image so a wrong output width fails at load, not on the first real batch.</summary>
    internal void Validate()
    {
        var blank = new float[3 * Card.Input.Width * Card.Input.Height];
        var rows = runner.Run(blank, BatchShape(Card.Input, 1));
        if (rows[0].Length != Card.Labels.Count)
            throw new InvalidDataException(
                $"model {Card.Version}: the graph outputs {rows[0].Length} scores per image but card.json lists {Card.Labels.Count} labels");
    }

    public static long[] BatchShape(ModelInputSpec input, int count) => input.Layout == TensorLayout.Nchw
        ? [count, 3, input.Height, input.Width]
        : [count, input.Height, input.Width, 3];

    public void Dispose() => runner.Dispose();
}
