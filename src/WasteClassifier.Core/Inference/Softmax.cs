namespace WasteClassifier.Core.Inference;

public static class Softmax
{
    /// <summary>Turns scores into probabilities in place (max-subtracted for stability).</summary>
    public static void InPlace(Span<float> scores)
    {
        if (scores.IsEmpty) return;
        var max = float.NegativeInfinity;
        foreach (var s in scores) max = MathF.Max(max, s);
        var sum = 0f;
        for (var i = 0; i < scores.Length; i++)
        {
            scores[i] = MathF.Exp(scores[i] - max);
            sum += scores[i];
        }
        for (var i = 0; i < scores.Length; i++) scores[i] /= sum;
    }
}
