namespace WasteClassifier.Core.Evaluation;

public static class ClassificationMetrics
{
    /// <summary>Builds a report from (true, predicted) label index pairs.</summary>
    public static ClassificationReport Compute(IReadOnlyList<string> labels, IEnumerable<(int Truth, int Predicted)> outcomes)
    {
        var confusion = labels.Select(_ => new int[labels.Count]).ToArray();
        foreach (var (truth, predicted) in outcomes) confusion[truth][predicted]++;
        return FromConfusion(labels, confusion);
    }

    public static ClassificationReport FromConfusion(IReadOnlyList<string> labels, int[][] confusion)
    {
        var total = confusion.Sum(row => row.Sum());
        var correct = Enumerable.Range(0, labels.Count).Sum(i => confusion[i][i]);
        var perClass = new Dictionary<string, ClassMetrics>();
        var supportedF1 = new List<double>();
        for (var c = 0; c < labels.Count; c++)
        {
            var support = confusion[c].Sum();
            var predicted = confusion.Sum(row => row[c]);
            var precision = predicted == 0 ? 0 : (double)confusion[c][c] / predicted;
            var recall = support == 0 ? 0 : (double)confusion[c][c] / support;
            var f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
            perClass[labels[c]] = new ClassMetrics(Round(precision), Round(recall), Round(f1), support);
            if (support > 0) supportedF1.Add(f1);
        }
        var macroF1 = supportedF1.Count == 0 ? 0 : supportedF1.Average();
        return new ClassificationReport(total, Round(total == 0 ? 0 : (double)correct / total), Round(macroF1), perClass, confusion, labels);
    }

    public static int ArgMax(ReadOnlySpan<float> scores)
    {
        var best = 0;
        for (var i = 1; i < scores.Length; i++)
            if (scores[i] > scores[best]) best = i;
        return best;
    }

    private static double Round(double value) => Math.Round(value, 4);
}
