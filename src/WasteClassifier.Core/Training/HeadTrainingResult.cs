using WasteClassifier.Core.Evaluation;

namespace WasteClassifier.Core.Training;

/// <summary>
/// A trained head and how it did on the evaluation split (hold-out, or validation in tuning mode). <see cref="TrainingImages"/>:
/// each image trained on, by content hash and label, for the card's <c>training.data_fingerprint</c>.
/// </summary>
public sealed record HeadTrainingResult(
    HeadModel Head,
    ClassificationReport Evaluation,
    ClassificationReport? EvaluationWithMirrorAverage,
    string EvaluationSplit,
    IReadOnlyDictionary<string, int> TrainingCounts,
    int TrainingRows,
    IReadOnlyList<(byte[] Sha256, string Label)> TrainingImages);
