using WasteClassifier.Core.Evaluation;

namespace WasteClassifier.Core.Training;

/// <summary>A trained head and how it did on the evaluation split (hold-out, or validation in tuning mode).</summary>
public sealed record HeadTrainingResult(
    HeadModel Head,
    ClassificationReport Evaluation,
    ClassificationReport? EvaluationWithMirrorAverage,
    string EvaluationSplit,
    IReadOnlyDictionary<string, int> TrainingCounts,
    int TrainingRows);
