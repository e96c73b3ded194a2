using WasteClassifier.Core.Evaluation;

namespace WasteClassifier.UnitTests.Evaluation;

public class ClassificationMetricsTests
{
    private static readonly string[] Labels = ["a", "b", "c"];

    [Fact]
    public void FromConfusion_HandMadeMatrix_ComputesAccuracyPerClassAndMacroF1()
    {
        // Rows: truth a (8 right, 2 as b), truth b (1 as a, 4 right), truth c: no examples.
        int[][] confusion = [[8, 2, 0], [1, 4, 0], [0, 0, 0]];

        var report = ClassificationMetrics.FromConfusion(Labels, confusion);

        Assert.Equal(15, report.Count);
        Assert.Equal(0.8, report.Accuracy, 4);
        Assert.Equal(8 / 9.0, report.PerClass["a"].Precision, 4);
        Assert.Equal(0.8, report.PerClass["a"].Recall, 4);
        Assert.Equal(4 / 6.0, report.PerClass["b"].Precision, 4);
        Assert.Equal(0.8, report.PerClass["b"].Recall, 4);
        Assert.Equal(0, report.PerClass["c"].Support);
        var f1A = 2 * (8 / 9.0) * 0.8 / (8 / 9.0 + 0.8);
        var f1B = 2 * (4 / 6.0) * 0.8 / (4 / 6.0 + 0.8);
        Assert.Equal((f1A + f1B) / 2, report.MacroF1, 4); // c has no support, so it is left out
    }

    [Fact]
    public void Compute_Outcomes_FillsConfusionRowsByTruth()
    {
        var report = ClassificationMetrics.Compute(Labels, [(0, 0), (0, 2), (2, 2)]);

        Assert.Equal([1, 0, 1], report.ConfusionMatrix[0]);
        Assert.Equal([0, 0, 1], report.ConfusionMatrix[2]);
    }

    [Fact]
    public void ToJson_Report_UsesSnakeCaseNames()
    {
        var json = ClassificationMetrics.Compute(Labels, [(0, 0)]).ToJson();

        Assert.Contains("\"macro_f1\"", json);
        Assert.Contains("\"per_class\"", json);
        Assert.Contains("\"confusion_matrix\"", json);
        Assert.Contains("\"labels\"", json);
    }
}
