namespace WasteClassifier.Core.Training;

/// <summary>Gradient buffers for one layer.</summary>
internal sealed class Gradient(int inputs, int outputs)
{
    public float[] Weights { get; } = new float[inputs * outputs];
    public float[] Bias { get; } = new float[outputs];

    public void Clear()
    {
        Array.Clear(Weights);
        Array.Clear(Bias);
    }

    public void Add(Gradient other)
    {
        VectorMath.AddScaled(Weights, 1, other.Weights);
        VectorMath.AddScaled(Bias, 1, other.Bias);
    }
}

/// <summary>A dense layer with its AdamW moments.</summary>
internal sealed class Layer
{
    private const float Beta1 = 0.9f, Beta2 = 0.999f, Epsilon = 1e-8f;
    private readonly float[] weightMoment, weightVariance, biasMoment, biasVariance;

    public Layer(int inputs, int outputs, bool relu, Random random)
    {
        (Inputs, Outputs, Relu) = (inputs, outputs, relu);
        Weights = new float[inputs * outputs];
        Bias = new float[outputs];
        // He initialisation for ReLU layers, Glorot-like for the output layer.
        var std = MathF.Sqrt((relu ? 2f : 1f) / inputs);
        for (var i = 0; i < Weights.Length; i++) Weights[i] = std * Gaussian(random);
        weightMoment = new float[Weights.Length];
        weightVariance = new float[Weights.Length];
        biasMoment = new float[outputs];
        biasVariance = new float[outputs];
    }

    public int Inputs { get; }
    public int Outputs { get; }
    public bool Relu { get; }
    public float[] Weights { get; }
    public float[] Bias { get; }

    public Gradient NewGradient() => new(Inputs, Outputs);

    /// <summary>Pre-activation W·x + b, with ReLU applied when the layer has it.</summary>
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

    /// <summary>Accumulates dL/dW and dL/db for <paramref name="delta"/> (dL/d output) and returns dL/d input.</summary>
    public float[] Backward(float[] input, float[] delta, Gradient gradient, bool needInputGradient)
    {
        var inputGradient = needInputGradient ? new float[Inputs] : [];
        for (var o = 0; o < Outputs; o++)
        {
            if (delta[o] == 0) continue;
            VectorMath.AddScaled(gradient.Weights.AsSpan(o * Inputs, Inputs), delta[o], input);
            gradient.Bias[o] += delta[o];
            if (needInputGradient) VectorMath.AddScaled(inputGradient, delta[o], Weights.AsSpan(o * Inputs, Inputs));
        }
        return inputGradient;
    }

    public void AdamStep(Gradient gradient, float rate, float weightDecay, int step)
    {
        var correction1 = 1 - MathF.Pow(Beta1, step);
        var correction2 = 1 - MathF.Pow(Beta2, step);
        Update(Weights, gradient.Weights, weightMoment, weightVariance, rate, weightDecay, correction1, correction2);
        Update(Bias, gradient.Bias, biasMoment, biasVariance, rate, 0, correction1, correction2);
    }

    private static void Update(float[] values, float[] gradient, float[] moment, float[] variance, float rate, float decay, float correction1, float correction2)
    {
        for (var i = 0; i < values.Length; i++)
        {
            moment[i] = Beta1 * moment[i] + (1 - Beta1) * gradient[i];
            variance[i] = Beta2 * variance[i] + (1 - Beta2) * gradient[i] * gradient[i];
            var update = moment[i] / correction1 / (MathF.Sqrt(variance[i] / correction2) + Epsilon);
            values[i] -= rate * (update + decay * values[i]);
        }
    }

    private static float Gaussian(Random random)
    {
        var u1 = 1.0 - random.NextDouble();
        var u2 = random.NextDouble();
        return (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }
}
