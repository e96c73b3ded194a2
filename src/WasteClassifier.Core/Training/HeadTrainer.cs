namespace WasteClassifier.Core.Training;

/// <summary>A feature vector with its label index (into the model's label list).</summary>
public sealed record LabelledFeatures(float[] Features, int Label);

/// <summary>Fits a <see cref="HeadModel"/> to labelled features.</summary>
public static class HeadTrainer
{
    /// <summary>Bias of labels with no training data: softmax gives them ~e⁻⁵⁰, so they are never predicted.</summary>
    public const float AbsentLabelBias = -50f;

    public static HeadModel Train(IReadOnlyList<LabelledFeatures> samples, int labelCount, HeadTrainingOptions options, Action<string>? log = null,
        Action<int, int>? onEpoch = null, CancellationToken cancellationToken = default)
    {
        if (samples.Count == 0) throw new ArgumentException("no training samples");
        var width = samples[0].Features.Length;
        var normaliser = FitNormaliser(samples, width, options.L2Normalise);
        var inputs = samples.Select(s => normaliser.Normalise(s.Features)).ToArray();

        // Train only over labels that have data, then widen the output layer to every label.
        var present = samples.Select(s => s.Label).Distinct().Order().ToArray();
        var compact = present.Select((label, index) => (label, index)).ToDictionary(p => p.label, p => p.index);
        var targets = samples.Select(s => compact[s.Label]).ToArray();
        var weights = ClassWeights(targets, present.Length, options.ClassWeighted);

        int[] sizes = options.HasHiddenLayer ? [width, options.HiddenUnits, present.Length] : [width, present.Length];
        var network = new TrainableNetwork(sizes, options.Seed);
        network.Fit(inputs, targets, weights, options, log, onEpoch, cancellationToken);

        var layers = network.ToLayers().ToList();
        layers[^1] = WidenOutput(layers[^1], present, labelCount);
        return normaliser with { Layers = layers };
    }

    /// <summary>Mean and std of the (L2-normalised) features; a head with no layers yet.</summary>
    private static HeadModel FitNormaliser(IReadOnlyList<LabelledFeatures> samples, int width, bool l2Normalise)
    {
        var identity = new HeadModel(width, l2Normalise, new float[width], Enumerable.Repeat(1f, width).ToArray(), []);
        var normalised = samples.Select(s => identity.Normalise(s.Features)).ToList();
        var mean = new float[width];
        var std = new float[width];
        for (var i = 0; i < width; i++)
        {
            double sum = 0, squares = 0;
            foreach (var row in normalised) { sum += row[i]; squares += (double)row[i] * row[i]; }
            var m = sum / normalised.Count;
            mean[i] = (float)m;
            // Floor keeps dead (always-zero) ReLU features from dividing by zero.
            std[i] = (float)Math.Sqrt(Math.Max(squares / normalised.Count - m * m, 0) + 1e-6);
        }
        return identity with { Mean = mean, Std = std };
    }

    /// <summary>Inverse-frequency weights (mean 1), so small classes count as much as large ones.</summary>
    private static float[] ClassWeights(int[] targets, int classes, bool weighted)
    {
        var counts = new int[classes];
        foreach (var t in targets) counts[t]++;
        return counts.Select(c => weighted ? (float)targets.Length / (classes * c) : 1f).ToArray();
    }

    private static DenseLayer WidenOutput(DenseLayer layer, int[] present, int labelCount)
    {
        var weights = new float[labelCount * layer.Inputs];
        var bias = Enumerable.Repeat(AbsentLabelBias, labelCount).ToArray();
        for (var c = 0; c < present.Length; c++)
        {
            Array.Copy(layer.Weights, c * layer.Inputs, weights, present[c] * layer.Inputs, layer.Inputs);
            bias[present[c]] = layer.Bias[c];
        }
        return new DenseLayer(layer.Inputs, labelCount, weights, bias, layer.Relu);
    }
}
