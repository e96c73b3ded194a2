using WasteClassifier.Components.Training;
using WasteClassifier.Core.Evaluation;
using WasteClassifier.Core.Training;

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
        // Two of 'a''s 20 images: one alone would not be evidence (Decide_OneImageOfAClass_IsNoLoss).
        var decision = PromotionGate.Decide(Report(0.95, ("a", 0.80, 20), ("b", 1.0, 20)), Report(0.90, ("a", 0.90, 20), ("b", 0.9, 20)), Settings, PromoteModes.Auto);
        Assert.False(decision.Promote);
        Assert.Single(decision.Reasons, r => r.Contains("recall of 'a'"));
    }

    [Fact]
    public void Decide_ClassWithFewHoldOutImages_IsNotJudgedAndTheReasonsSaySo()
    {
        // 'c' has 2 hold-out images: the candidate missing one of them halves its recall and, averaged in, costs 0.13 of
        // macro-F1. That is one image, not evidence; 'a' and 'b' (50 images each) are unchanged.
        (int, int)[] common = [.. Enumerable.Repeat((0, 0), 50), .. Enumerable.Repeat((1, 1), 50)];
        var active = ClassificationMetrics.Compute(["a", "b", "c"], [.. common, (2, 2), (2, 2)]);
        var candidate = ClassificationMetrics.Compute(["a", "b", "c"], [.. common, (2, 2), (2, 0)]);

        var decision = PromotionGate.Decide(candidate, active, Settings, PromoteModes.Auto);

        Assert.True(decision.Promote, string.Join("; ", decision.Reasons));
        Assert.Contains(decision.Reasons, r => r.Contains("'c' left out of the macro-F1: only 2 hold-out image(s), fewer than Training:MinClassSupport (10); recall 0.500, active 1.000"));
        Assert.Contains(decision.Reasons, r => r.Contains("compared on the 100 hold-out image(s)") && r.Contains("with at least 10 image(s) each"));
        Assert.DoesNotContain(decision.Reasons, r => r.Contains("newly recognised"));
    }

    [Fact]
    public void Decide_ClassWithFewHoldOutImagesLosesItAll_RefusesByItsRecall()
    {
        // 'c' has 9 hold-out images, fewer than MinClassSupport: left out of the macro-F1 average, but a candidate that
        // predicts 'a' for all of them (as one that wipes out vegetation, whose hold-out is a few labelled samples) must
        // still be refused by its recall.
        (int, int)[] common = [.. Enumerable.Repeat((0, 0), 50), .. Enumerable.Repeat((1, 1), 50)];
        var active = ClassificationMetrics.Compute(["a", "b", "c"], [.. common, .. Enumerable.Repeat((2, 2), 9)]);
        var candidate = ClassificationMetrics.Compute(["a", "b", "c"], [.. common, .. Enumerable.Repeat((2, 0), 9)]);

        var decision = PromotionGate.Decide(candidate, active, Settings, PromoteModes.Auto);

        Assert.False(decision.Promote);
        Assert.True(decision.Refused);
        Assert.Contains(decision.Reasons, r => r.StartsWith("recall of 'c' falls from 1.000 to 0.000", StringComparison.Ordinal));
    }

    [Fact]
    public void Decide_SetAsideImagesPredictedAsAJudgedClass_CostThatClassPrecision()
    {
        // Only 'a' (12 hold-out images) is judged; 'b'-'h' have 8 each. A candidate that predicts 'a' for everything sends
        // 56 images into 'a': its precision there is 12/68, which must count, as the job trained on the same data.
        string[] labels = ["a", "b", "c", "d", "e", "f", "g", "h"];
        (int, int)[] truth = [.. Enumerable.Repeat((0, 0), 12), .. Enumerable.Range(1, 7).SelectMany(c => Enumerable.Repeat((c, c), 8))];
        var active = ClassificationMetrics.Compute(labels, truth);
        var candidate = ClassificationMetrics.Compute(labels, [.. truth.Select(t => (t.Item1, 0))]);

        var decision = PromotionGate.Decide(candidate, active, Settings, PromoteModes.Auto, sameData: true);

        Assert.False(decision.Promote);
        Assert.True(decision.Refused);
        Assert.Contains(decision.Reasons, r => r.StartsWith("macro-F1 0.3000 is 0.7000 below the active model's 1.0000", StringComparison.Ordinal));
        Assert.Contains(decision.Reasons, r => r.Contains("compared on the 12 hold-out image(s)"));
    }

    [Fact]
    public void Decide_OneImageOfAClass_IsNoLossButTwoAre()
    {
        // 'c' has 12 hold-out images, enough to judge: one missed is a recall drop of 0.083 (more than 0.05), two are 0.167.
        var settings = new TrainingSettings { MaxMacroF1Drop = 0.1, MaxClassRecallDrop = 0.05 };
        (int, int)[] common = [.. Enumerable.Repeat((0, 0), 50), .. Enumerable.Repeat((1, 1), 50)];
        var active = ClassificationMetrics.Compute(["a", "b", "c"], [.. common, .. Enumerable.Repeat((2, 2), 12)]);
        var oneMissed = ClassificationMetrics.Compute(["a", "b", "c"], [.. common, .. Enumerable.Repeat((2, 2), 11), (2, 0)]);
        var twoMissed = ClassificationMetrics.Compute(["a", "b", "c"], [.. common, .. Enumerable.Repeat((2, 2), 10), (2, 0), (2, 0)]);

        var one = PromotionGate.Decide(oneMissed, active, settings, PromoteModes.Auto);
        var two = PromotionGate.Decide(twoMissed, active, settings, PromoteModes.Auto);

        Assert.True(one.Promote, string.Join("; ", one.Reasons));
        Assert.False(two.Promote);
        Assert.True(two.Refused);
        Assert.Contains(two.Reasons, r => r.Contains("recall of 'c' falls from 1.000 to 0.833 (allowed drop 0.050, or a single image of its 12)"));
    }

    [Fact]
    public void Decide_NoClassWithEnoughHoldOutImages_StaysACandidateUnrefused()
    {
        // 4 images per class, as a small base set's hold-out: the candidate is worse, but by one image, too little to say.
        var active = ClassificationMetrics.Compute(["a", "b"], [.. Enumerable.Repeat((0, 0), 4), .. Enumerable.Repeat((1, 1), 4)]);
        var candidate = ClassificationMetrics.Compute(["a", "b"], [(0, 0), (0, 0), (0, 0), (0, 1), .. Enumerable.Repeat((1, 1), 4)]);

        var decision = PromotionGate.Decide(candidate, active, Settings, PromoteModes.Auto);

        Assert.False(decision.Promote);
        Assert.False(decision.Refused);
        Assert.StartsWith("no class has 10 hold-out image(s) (Training:MinClassSupport)", decision.Reasons[0]);
        Assert.Contains(decision.Reasons, r => r.Contains("'a' left out of the macro-F1: only 4 hold-out image(s)"));
        Assert.DoesNotContain(decision.Reasons, r => r.StartsWith("macro-F1", StringComparison.Ordinal));
        Assert.True(PromotionGate.Decide(candidate, active, new TrainingSettings { MinClassSupport = 4 }, PromoteModes.Auto).Refused);
    }

    [Fact]
    public void Decide_NoClassWithEnoughHoldOutImagesButAllRecallLost_IsRefused()
    {
        // 9 images of each of 3 classes: too few to average, but a candidate that gets all 27 wrong is no candidate to
        // promote without force.
        var active = ClassificationMetrics.Compute(["a", "b", "c"], [.. Enumerable.Range(0, 3).SelectMany(c => Enumerable.Repeat((c, c), 9))]);
        var candidate = ClassificationMetrics.Compute(["a", "b", "c"], [.. Enumerable.Range(0, 3).SelectMany(c => Enumerable.Repeat((c, (c + 1) % 3), 9))]);

        var decision = PromotionGate.Decide(candidate, active, Settings, PromoteModes.Auto);

        Assert.False(decision.Promote);
        Assert.True(decision.Refused);
        Assert.Equal(3, decision.Reasons.Count(r => r.StartsWith("recall of '", StringComparison.Ordinal) && r.Contains("falls from 1.000 to 0.000")));
        Assert.Contains(decision.Reasons, r => r.StartsWith("no class has 10 hold-out image(s) (Training:MinClassSupport)", StringComparison.Ordinal));
    }

    [Fact]
    public void Decide_HoldOutOnlyOfAClassTheActiveModelNeverRecallsOrLacks_PromotesWithoutBlamingSupport()
    {
        // 50 'v' images, which the active model never recalls (or does not have): there is nothing the candidate could lose,
        // and the hold-out's size is not why nothing is compared.
        var candidate = ClassificationMetrics.Compute(["a", "v"], [.. Enumerable.Repeat((1, 1), 50)]);
        var neverRecalls = ClassificationMetrics.Compute(["a", "v"], [.. Enumerable.Repeat((1, 0), 50)]);
        var lacks = ClassificationMetrics.Compute(["a"], []) with { NotScored = 50 };

        foreach (var active in new[] { neverRecalls, lacks })
        {
            var decision = PromotionGate.Decide(candidate, active, Settings, PromoteModes.Auto, sameData: false);

            Assert.True(decision.Promote, string.Join("; ", decision.Reasons));
            Assert.DoesNotContain(decision.Reasons, r => r.Contains("MinClassSupport"));
            Assert.Contains(decision.Reasons, r => r.Contains("the hold-out has no image of a class both models have and the active model recalls"));
            Assert.Contains(decision.Reasons, r => r.Contains("'v' is newly recognised (recall 1.000)"));
        }
    }

    [Fact]
    public void Decide_NewClassRecognised_PromotesAndNotesIt()
    {
        (int, int)[] common = [.. Enumerable.Repeat((0, 0), 10), .. Enumerable.Repeat((1, 1), 10)];
        var candidate = ClassificationMetrics.Compute(["a", "b", "veg"], [.. common, .. Enumerable.Repeat((2, 2), 4), (2, 0)]);
        var active = ClassificationMetrics.Compute(["a", "b", "veg"], [.. common, .. Enumerable.Repeat((2, 0), 5)]);

        var decision = PromotionGate.Decide(candidate, active, Settings, PromoteModes.Auto);

        Assert.True(decision.Promote, string.Join("; ", decision.Reasons));
        Assert.Contains(decision.Reasons, r => r.Contains("'veg' is newly recognised"));
    }

    [Fact]
    public void Decide_ActiveModelNeverRecallsAClassItHas_ComparesOnTheOtherClassesSoTheNewClassHidesNoLoss()
    {
        // Both have 'veg'; the active model never predicts it (the default model's vegetation), so its F1 of 0 there is in
        // its macro-F1. The candidate learns 'veg' but gets 4 more of 'a' and 'b' wrong: averaged over the three classes it
        // gains 0.32; on the two the active model knows it loses 0.04.
        (int, int)[] veg = [.. Enumerable.Repeat((2, 0), 3)];
        var active = ClassificationMetrics.Compute(["a", "b", "veg"], [.. Enumerable.Repeat((0, 0), 50), .. Enumerable.Repeat((1, 1), 50), .. veg]);
        var candidate = ClassificationMetrics.Compute(["a", "b", "veg"],
            [.. Enumerable.Repeat((0, 0), 48), (0, 1), (0, 1), .. Enumerable.Repeat((1, 1), 48), (1, 0), (1, 0), .. Enumerable.Repeat((2, 2), 3)]);
        Assert.True(candidate.MacroF1 > active.MacroF1 + 0.3);

        var decision = PromotionGate.Decide(candidate, active, Settings, PromoteModes.Auto);

        Assert.False(decision.Promote, string.Join("; ", decision.Reasons));
        Assert.True(decision.Refused);
        Assert.Contains(decision.Reasons, r => r.Contains("macro-F1 0.9600 is 0.0400 below the active model's 1.0000"));
        Assert.Contains(decision.Reasons, r => r.Contains("'veg', which the active model never recalls, scored for the candidate only: recall 1.000 over 3 image(s)"));
    }

    [Fact]
    public void Decide_JobTrainedOnTheSameDataAsTheActiveModel_RefusesAnyMacroF1Drop()
    {
        var candidate = Report(0.9196, ("a", 0.92, 10), ("b", 0.92, 10));
        var active = Report(0.9292, ("a", 0.93, 10), ("b", 0.93, 10));

        var same = PromotionGate.Decide(candidate, active, Settings, PromoteModes.Auto, sameData: true);
        var newData = PromotionGate.Decide(candidate, active, Settings, PromoteModes.Auto, sameData: false);

        Assert.False(same.Promote);
        Assert.Contains(same.Reasons, r => r.Contains("allowed drop 0.0000: the job trained on the same data as the active model"));
        Assert.True(newData.Promote, string.Join("; ", newData.Reasons));
        Assert.True(PromotionGate.Decide(active, active, Settings, PromoteModes.Auto, sameData: true).Promote);
    }

    [Fact]
    public void SameTrainingData_ComparesTheImagesPerLabelTheActiveCardRecords()
    {
        var card = System.Text.Json.JsonDocument.Parse("""{"dataset":"waste-v1","images_per_label":{"a":250,"b":135,"veg":0}}""").RootElement;

        Assert.True(PromotionGate.SameTrainingData(card, new Dictionary<string, int> { ["a"] = 250, ["b"] = 135, ["veg"] = 0 }, null));
        Assert.True(PromotionGate.SameTrainingData(card, new Dictionary<string, int> { ["a"] = 250, ["b"] = 135 }, "sha256:00"));
        Assert.False(PromotionGate.SameTrainingData(card, new Dictionary<string, int> { ["a"] = 250, ["b"] = 135, ["veg"] = 3 }, "sha256:00"));
        Assert.False(PromotionGate.SameTrainingData(card, new Dictionary<string, int> { ["a"] = 249, ["b"] = 135 }, "sha256:00"));
        Assert.False(PromotionGate.SameTrainingData(null, new Dictionary<string, int> { ["a"] = 250, ["b"] = 135 }, "sha256:00"));
    }

    [Fact]
    public void SameTrainingData_ActiveCardWithAFingerprint_JudgesByTheFingerprintNotTheCounts()
    {
        // Two images swap labels: the same counts, different data. The same pairs in another order are the same data.
        byte[] one = [1, 2, 3], two = [4, 5, 6];
        var trained = TrainingDataFingerprint.Of([(one, "a"), (two, "b")]);
        var swapped = TrainingDataFingerprint.Of([(one, "b"), (two, "a")]);
        var card = System.Text.Json.JsonSerializer.SerializeToElement(new Dictionary<string, object>
        {
            ["images_per_label"] = new Dictionary<string, int> { ["a"] = 1, ["b"] = 1 },
            ["data_fingerprint"] = trained,
        });
        var counts = new Dictionary<string, int> { ["a"] = 1, ["b"] = 1 };

        Assert.NotEqual(trained, swapped);
        Assert.False(PromotionGate.SameTrainingData(card, counts, swapped));
        // One image replaced by another of its class: the same counts too.
        Assert.False(PromotionGate.SameTrainingData(card, counts, TrainingDataFingerprint.Of([([7, 8, 9], "a"), (two, "b")])));
        Assert.True(PromotionGate.SameTrainingData(card, counts, TrainingDataFingerprint.Of([(two, "b"), (one, "a")])));

        var candidate = Report(0.9196, ("a", 0.92, 10), ("b", 0.92, 10));
        var active = Report(0.9292, ("a", 0.93, 10), ("b", 0.93, 10));
        Assert.True(PromotionGate.Decide(candidate, active, Settings, PromoteModes.Auto, PromotionGate.SameTrainingData(card, counts, swapped)).Promote);
        Assert.False(PromotionGate.Decide(candidate, active, Settings, PromoteModes.Auto, PromotionGate.SameTrainingData(card, counts, trained)).Promote);
    }

    [Fact]
    public void SameTrainingData_ActiveCardWithoutAFingerprint_JudgesByTheCounts()
    {
        // The bundled model's card (wastectl train) and cards of jobs before the fingerprint record only the counts.
        var card = System.Text.Json.JsonDocument.Parse("""{"images_per_label":{"a":1,"b":1}}""").RootElement;
        var fingerprint = TrainingDataFingerprint.Of([([1, 2, 3], "a"), ([4, 5, 6], "b")]);

        Assert.True(PromotionGate.SameTrainingData(card, new Dictionary<string, int> { ["a"] = 1, ["b"] = 1 }, fingerprint));
        Assert.False(PromotionGate.SameTrainingData(card, new Dictionary<string, int> { ["a"] = 2, ["b"] = 1 }, fingerprint));
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
        Assert.Contains(decision.Reasons, r => r.Contains("compared on the 20 hold-out image(s) of the classes both models have"));
        Assert.Contains(decision.Reasons, r => r.Contains("'veg', which the active model lacks, scored for the candidate only: recall 0.000 over 5 image(s)"));
    }

    [Fact]
    public void FromJson_DecisionRecordedBeforeRefusedExisted_ARefusalReadsAsRefused()
    {
        // Candidates the gate refused before decisions recorded "refused" must not be promoted without force after an upgrade.
        var refusal = PromotionGate.Decide(Report(0.30, ("a", 0.3, 10), ("b", 0.3, 10)), Report(0.90, ("a", 0.9, 10), ("b", 0.9, 10)), Settings, PromoteModes.Auto);
        var manual = PromotionGate.Decide(Report(0.93, ("a", 0.9, 10), ("b", 0.95, 10)), Report(0.90, ("a", 0.9, 10), ("b", 0.9, 10)), Settings, PromoteModes.Manual);
        static string Old(PromotionDecision d) => System.Text.Json.JsonSerializer.Serialize(new { promoted = d.Promote, reasons = d.Reasons });

        Assert.True(PromotionDecision.FromJson(Old(refusal))!.Refused);
        Assert.False(PromotionDecision.FromJson(Old(manual))!.Refused);
        Assert.False(PromotionDecision.FromJson("""{"promoted":false,"reasons":["no hold-out images: the candidate cannot be compared, so it stays a candidate"]}""")!.Refused);
        Assert.True(PromotionDecision.FromJson(refusal.ToJson())!.Refused);
        Assert.False(PromotionDecision.FromJson(manual.ToJson())!.Refused);
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
