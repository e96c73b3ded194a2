namespace WasteClassifier.Core.Training;

/// <summary>
/// Dense ReLU network trained with mini-batch AdamW on class-weighted, label-smoothed cross-entropy, with
/// dropout and a cosine learning-rate decay. Plain C#: heads are small (512→256→8) and data sets are thousands of rows.
/// Deterministic for a given seed: dropout masks depend only on (seed, step, position), and the two
/// gradient partitions are summed in a fixed order.
/// </summary>
internal sealed class TrainableNetwork
{
    private const int Partitions = 2;
    private readonly List<Layer> layers = [];

    public TrainableNetwork(IReadOnlyList<int> sizes, int seed)
    {
        var random = new Random(seed);
        for (var i = 0; i + 1 < sizes.Count; i++)
            layers.Add(new Layer(sizes[i], sizes[i + 1], relu: i + 2 < sizes.Count, random));
    }

    public void Fit(float[][] x, int[] y, float[] classWeights, HeadTrainingOptions options, Action<string>? log,
        Action<int, int>? onEpoch = null, CancellationToken cancellationToken = default)
    {
        var order = Enumerable.Range(0, x.Length).ToArray();
        var shuffle = new Random(options.Seed);
        var stepsPerEpoch = (x.Length + options.BatchSize - 1) / options.BatchSize;
        var totalSteps = stepsPerEpoch * options.Epochs;
        var gradients = Enumerable.Range(0, Partitions).Select(_ => layers.Select(l => l.NewGradient()).ToArray()).ToArray();
        var step = 0;
        for (var epoch = 0; epoch < options.Epochs; epoch++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            onEpoch?.Invoke(epoch, options.Epochs);
            shuffle.Shuffle(order);
            var loss = 0.0;
            for (var start = 0; start < order.Length; start += options.BatchSize, step++)
            {
                var batch = order.AsSpan(start, Math.Min(options.BatchSize, order.Length - start)).ToArray();
                var weightSum = batch.Sum(i => classWeights[y[i]]);
                var partLoss = new double[Partitions];
                Parallel.For(0, Partitions, p =>
                {
                    foreach (var g in gradients[p]) g.Clear();
                    for (var k = p; k < batch.Length; k += Partitions)
                    {
                        var dropout = new Random(DropoutSeed(options.Seed, step, k));
                        partLoss[p] += Backpropagate(x[batch[k]], y[batch[k]], classWeights[y[batch[k]]] / weightSum, options, dropout, gradients[p]);
                    }
                });
                loss += partLoss.Sum();
                var rate = options.LearningRate * 0.5f * (1 + MathF.Cos(MathF.PI * step / totalSteps));
                for (var l = 0; l < layers.Count; l++)
                {
                    for (var p = 1; p < Partitions; p++) gradients[0][l].Add(gradients[p][l]);
                    layers[l].AdamStep(gradients[0][l], rate, options.WeightDecay, step + 1);
                }
            }
            if (log is not null && (epoch + 1) % 10 == 0) log($"epoch {epoch + 1}/{options.Epochs}: loss {loss / stepsPerEpoch:F4}");
        }
    }

    /// <summary>Forward and backward pass for one sample; adds its weighted gradient and returns its weighted loss.</summary>
    private double Backpropagate(float[] input, int label, float weight, HeadTrainingOptions options, Random dropout, Gradient[] gradients)
    {
        var activations = new float[layers.Count + 1][];
        activations[0] = Dropout(input, options.InputDropout, dropout);
        for (var l = 0; l < layers.Count; l++)
        {
            var output = layers[l].Forward(activations[l]);
            activations[l + 1] = layers[l].Relu ? Dropout(output, options.HiddenDropout, dropout) : output;
        }

        var probabilities = (float[])activations[^1].Clone();
        Inference.Softmax.InPlace(probabilities);
        var classes = probabilities.Length;
        var delta = new float[classes];
        double loss = 0;
        for (var c = 0; c < classes; c++)
        {
            var target = (c == label ? 1 - options.LabelSmoothing : 0) + options.LabelSmoothing / classes;
            delta[c] = weight * (probabilities[c] - target);
            loss -= weight * target * Math.Log(Math.Max(probabilities[c], 1e-12));
        }

        for (var l = layers.Count - 1; l >= 0; l--)
        {
            // A dropped or inactive unit has zero activation (inverted dropout rescales survivors), so its gradient is zero too.
            if (layers[l].Relu) ApplyActivationMask(delta, activations[l + 1], options.HiddenDropout);
            delta = layers[l].Backward(activations[l], delta, gradients[l], needInputGradient: l > 0);
        }
        return loss;
    }

    /// <summary>A fixed mix (HashCode.Combine is randomised per process, which broke reproducibility across runs).</summary>
    private static int DropoutSeed(int seed, int step, int position) =>
        unchecked((int)(((uint)seed * 2654435761u) ^ ((uint)step * 40503u + (uint)position * 2246822519u)));

    private static void ApplyActivationMask(float[] delta, float[] activation, float dropoutRate)
    {
        var scale = 1f / (1f - dropoutRate);
        for (var i = 0; i < delta.Length; i++) delta[i] = activation[i] > 0 ? delta[i] * scale : 0;
    }

    private static float[] Dropout(float[] values, float rate, Random random)
    {
        if (rate <= 0) return values;
        var scale = 1f / (1f - rate);
        var result = new float[values.Length];
        for (var i = 0; i < values.Length; i++) result[i] = random.NextSingle() < rate ? 0 : values[i] * scale;
        return result;
    }

    public IReadOnlyList<DenseLayer> ToLayers() =>
        layers.Select(l => new DenseLayer(l.Inputs, l.Outputs, (float[])l.Weights.Clone(), (float[])l.Bias.Clone(), l.Relu)).ToList();
}
