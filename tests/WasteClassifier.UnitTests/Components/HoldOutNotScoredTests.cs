using WasteClassifier.Components.Training;
using WasteClassifier.Core.Training;

namespace WasteClassifier.UnitTests.Components;

/// <summary>data_counts.hold_out_not_scored: a job's own base data in the hold-out split that the evaluation hold-out does not score.</summary>
public sealed class HoldOutNotScoredTests
{
    [Fact]
    public void HoldOutNotScored_BaseDatasetOtherThanTheEvaluationOne_CountsItsHoldOutImagesTheEvaluationDoesNotHold()
    {
        var data = Enumerable.Range(0, 60).Select(i => LabelledImage.From($"mine/{i}.jpg", 0, BitConverter.GetBytes(i))).ToList();
        var heldOut = data.Where(i => HoldOutSplit.IsHoldOut(i.Sha256)).ToList();
        Assert.True(heldOut.Count >= 2);
        // One of them is also in the evaluation dataset's hold-out (the same bytes), so it is scored.
        IReadOnlyList<LabelledImage> evaluation = [heldOut[0] with { Path = "waste-v1/x.jpg" }];

        Assert.Equal(heldOut.Count - 1, TrainingJobRunner.HoldOutNotScored(data, evaluation));
        Assert.Equal(0, TrainingJobRunner.HoldOutNotScored(heldOut, heldOut));
    }
}
