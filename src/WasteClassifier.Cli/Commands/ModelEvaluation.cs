using System.Security.Cryptography;
using WasteClassifier.Core.Evaluation;
using WasteClassifier.Core.Inference;
using WasteClassifier.Core.Training;

namespace WasteClassifier.Cli.Commands;

/// <summary>End-to-end scoring of a model folder on a data set (shared by train and evaluate).</summary>
internal static class ModelEvaluation
{
    public static ClassificationReport Run(string modelDirectory, string datasetDirectory, string split, InferenceOptions options)
    {
        var entries = DatasetManifest.Read(datasetDirectory);
        if (split == "holdout")
            entries = entries.Where(e => HoldOutSplit.IsHoldOut(SHA256.HashData(File.ReadAllBytes(Path.Combine(datasetDirectory, e.Path))))).ToList();
        using var classifier = ModelLoader.Load(modelDirectory, options);
        Log.Info($"evaluating model {classifier.Card.Version} on {entries.Count} images ({split})");
        var started = System.Diagnostics.Stopwatch.StartNew();
        var report = ImageSetEvaluator.Evaluate(classifier, datasetDirectory, entries, Log.Info);
        var notScored = report.NotScored > 0 ? $"; {report.NotScored} image(s) not scored" : "";
        Log.Info($"accuracy {report.Accuracy:P2}, macro-F1 {report.MacroF1:F4} over {report.Count} image(s){notScored} ({entries.Count / started.Elapsed.TotalSeconds:F1} images/s)");
        return report;
    }
}
