using WasteClassifier.Core.Evaluation;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.Core.Training;

/// <summary>
/// Features (cached) → head fitted on the training side of <see cref="HoldOutSplit"/> → scored on the hold-out.
/// The hold-out is never trained on; in tuning mode the score comes from a validation bucket of the training side instead.
/// </summary>
public static class HeadTrainingPipeline
{
    public static HeadTrainingResult Run(HeadTrainingRequest request, Action<string> log)
    {
        var entries = DatasetManifest.Read(request.DatasetDirectory);
        var views = FeatureView.ForAugmentation(request.Augmentation).ToList();
        if (!views.Contains(FeatureView.Mirrored)) views.Add(FeatureView.Mirrored); // for the mirror-average score only

        IReadOnlyList<FeatureSample> samples;
        using (var extractor = FeatureExtractor.Create(request.Backbone, request.Inference))
        {
            var cache = new FeatureCache(request.CacheDirectory, request.Backbone.Id, request.Backbone.FeatureWidth);
            samples = new FeatureExtractionRunner(extractor, cache, log).Run(request.DatasetDirectory, entries, request.Labels, views);
        }

        var trainViews = FeatureView.ForAugmentation(request.Augmentation).Select(v => v.Name).ToList();
        var training = samples.Where(s => !s.IsHoldOut && !(request.Validate && HoldOutSplit.IsValidation(s.Sha256))).ToList();
        var evaluation = samples.Where(s => request.Validate ? !s.IsHoldOut && HoldOutSplit.IsValidation(s.Sha256) : s.IsHoldOut).ToList();
        var rows = training.SelectMany(s => trainViews.Select(v => new LabelledFeatures(s.Views[v], s.Label))).ToList();
        log($"training on {training.Count} images ({rows.Count} rows), evaluating on {evaluation.Count} ({(request.Validate ? "validation" : "hold-out")})");

        var head = HeadTrainer.Train(rows, request.Labels.Count, request.Head, log);
        var report = Score(request.Labels, evaluation, s => head.Predict(s.Original));
        var mirrored = Score(request.Labels, evaluation, s => Average(head.Predict(s.Original), head.Predict(s.Views[FeatureView.Mirrored.Name])));
        var counts = request.Labels.ToDictionary(l => l, l => training.Count(s => request.Labels[s.Label] == l));
        return new HeadTrainingResult(head, report, mirrored, request.Validate ? "validation" : "holdout", counts, rows.Count,
            [.. training.Select(s => (s.Sha256, request.Labels[s.Label]))]);
    }

    private static ClassificationReport Score(IReadOnlyList<string> labels, IEnumerable<FeatureSample> samples, Func<FeatureSample, float[]> predict) =>
        ClassificationMetrics.Compute(labels, samples.Select(s => (s.Label, ClassificationMetrics.ArgMax(predict(s)))));

    private static float[] Average(float[] a, float[] b) => a.Select((v, i) => (v + b[i]) / 2).ToArray();
}
