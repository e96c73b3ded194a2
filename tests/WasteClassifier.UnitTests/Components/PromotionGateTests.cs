using WasteClassifier.Components.Training;
using WasteClassifier.Core.Evaluation;

namespace WasteClassifier.UnitTests.Components;

public sealed class PromotionGateTests
{
    private static readonly TrainingSettings Settings = new() { MaxMacroF1Drop = 0.01, MaxClassRecallDrop = 0.05 };

    [Fact]
    public void Decide_BetterCandidate_Promotes()
    {
        var decision = PromotionGate.Decide(Report(0.93, ("a", 0.9, 10), ("b", 0.95, 10)), Report(0.90, ("a", 0.9, 10), ("b", 0.9, 10)), Settings, PromoteModes.Auto);
        Assert.True(decision.Promote);
    }

    [Fact]
    public void Decide_MacroF1DropsTooMuch_RefusesAndSaysWhy()
    {
        var decision = PromotionGate.Decide(Report(0.30, ("a", 0.3, 10), ("b", 0.3, 10)), Report(0.90, ("a", 0.9, 10), ("b", 0.9, 10)), Settings, PromoteModes.Auto);
        Assert.False(decision.Promote);
        Assert.Contains(decision.Reasons, r => r.Contains("macro-F1") && r.Contains("below"));
        Assert.Contains(decision.Reasons, r => r.Contains("recall of 'a'"));
    }

    [Fact]
    public void Decide_OneClassLosesRecall_Refuses()
    {
        var decision = PromotionGate.Decide(Report(0.95, ("a", 0.80, 10), ("b", 1.0, 10)), Report(0.90, ("a", 0.90, 10), ("b", 0.9, 10)), Settings, PromoteModes.Auto);
        Assert.False(decision.Promote);
        Assert.Single(decision.Reasons, r => r.Contains("recall of 'a'"));
    }

    [Fact]
    public void Decide_NewClassRecognised_PromotesAndNotesIt()
    {
        var decision = PromotionGate.Decide(Report(0.92, ("a", 0.9, 10), ("veg", 0.8, 5)), Report(0.90, ("a", 0.9, 10), ("veg", 0.0, 5)), Settings, PromoteModes.Auto);
        Assert.True(decision.Promote);
        Assert.Contains(decision.Reasons, r => r.Contains("'veg' is newly recognised"));
    }

    [Fact]
    public void Decide_ManualMode_KeepsAPassingCandidate()
    {
        var decision = PromotionGate.Decide(Report(0.95, ("a", 0.95, 10)), Report(0.90, ("a", 0.9, 10)), Settings, PromoteModes.Manual);
        Assert.False(decision.Promote);
        Assert.Contains(decision.Reasons, r => r.Contains("promote=manual"));
    }

    [Fact]
    public void Decide_ActiveModelLacksAClass_ComparesBothOnTheImagesOfTheClassesBothHave()
    {
        // The active model has no 'veg': scored on the same hold-out it skips the 5 'veg' images, which the candidate is
        // scored on (and gets wrong). Averaged over 3 classes against 2, the candidate's macro-F1 would be refused.
        (int, int)[] common = [.. Enumerable.Repeat((0, 0), 10), .. Enumerable.Repeat((1, 1), 10)];
        var candidate = ClassificationMetrics.Compute(["a", "b", "veg"], [.. common, .. Enumerable.Repeat((2, 0), 5)]);
        var active = ClassificationMetrics.Compute(["a", "b"], common) with { NotScored = 5 };

        var decision = PromotionGate.Decide(candidate, active, Settings, PromoteModes.Auto);

        Assert.True(decision.Promote, string.Join("; ", decision.Reasons));
        Assert.Contains(decision.Reasons, r => r.Contains("macro-F1 1.0000 vs active 1.0000"));
        Assert.Contains(decision.Reasons, r => r.Contains("compared on the 20 hold-out image(s)"));
        Assert.Contains(decision.Reasons, r => r.Contains("'veg', which the active model lacks, scored for the candidate only: recall 0.000 over 5 image(s)"));
    }

    [Fact]
    public void OnlyTrueLabels_DropsTheImagesOfOtherClasses()
    {
        var report = ClassificationMetrics.Compute(["a", "b", "veg"], [(0, 0), (0, 2), (1, 1), (2, 0), (2, 2)]);

        var common = report.OnlyTrueLabels(["a", "b"]);

        Assert.Equal(3, common.Count);
        Assert.Equal(2, common.NotScored);
        Assert.Equal(0, common.PerClass["veg"].Support);
        Assert.Equal(1.0, common.PerClass["a"].Precision); // the 'veg' image predicted 'a' is gone with its row
        Assert.Equal(0.5, common.PerClass["a"].Recall);
    }

    private static ClassificationReport Report(double macroF1, params (string Label, double Recall, int Support)[] classes) =>
        new(classes.Sum(c => c.Support), macroF1, macroF1,
            classes.ToDictionary(c => c.Label, c => new ClassMetrics(c.Recall, c.Recall, c.Recall, c.Support)),
            [], classes.Select(c => c.Label).ToList());
}
