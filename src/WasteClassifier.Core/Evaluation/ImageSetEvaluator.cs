using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;
using WasteClassifier.Core.Training;

namespace WasteClassifier.Core.Evaluation;

/// <summary>Runs a classifier end to end (bytes → tensor → model) over labelled image files.</summary>
public static class ImageSetEvaluator
{
    private const int BatchSize = 16;

    /// <summary>
    /// Scores images already in memory; each image's label is looked up by name in the classifier's labels
    /// (<paramref name="labels"/> names the images' label indices), so models with different label orders compare fairly.
    /// </summary>
    public static ClassificationReport Evaluate(IImageClassifier classifier, IReadOnlyList<LabelledImage> images, IReadOnlyList<string> labels,
        Action<string> log, CancellationToken cancellationToken = default)
    {
        var card = classifier.Card;
        var tensorLength = ImageTensorWriter.TensorLength(card.Input);
        var outcomes = new List<(int, int)>();
        var tensors = new float[BatchSize * tensorLength];
        var known = images.Where(i => card.Labels.Contains(labels[i.Label])).ToList();
        if (known.Count < images.Count) log($"{images.Count - known.Count} image(s) carry labels model {card.Version} does not have; not scored");
        for (var start = 0; start < known.Count; start += BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = known.Skip(start).Take(BatchSize).ToList();
            var checks = new ImageCheck[batch.Count];
            Parallel.For(0, batch.Count, i => checks[i] = ImageTensorWriter.Write(batch[i].Bytes, card.Input, tensors.AsSpan(i * tensorLength, tensorLength), ImageLimits.Default));
            var accepted = Enumerable.Range(0, batch.Count).Where(i => checks[i].Ok).ToList();
            // Refused images are skipped (and said so): they are data problems, not model errors.
            foreach (var i in Enumerable.Range(0, batch.Count).Where(i => !checks[i].Ok)) log($"skipped {batch[i].Path}: {checks[i].Message}");
            for (var k = 0; k < accepted.Count; k++)
                if (accepted[k] != k) tensors.AsSpan(accepted[k] * tensorLength, tensorLength).CopyTo(tensors.AsSpan(k * tensorLength, tensorLength));
            var probabilities = classifier.Classify(tensors.AsMemory(0, accepted.Count * tensorLength), accepted.Count);
            for (var k = 0; k < accepted.Count; k++)
                outcomes.Add((FeatureExtractionRunner.IndexOfLabel(card.Labels, labels[batch[accepted[k]].Label]), ClassificationMetrics.ArgMax(probabilities[k])));
            if ((start / BatchSize + 1) % 20 == 0) log($"evaluated {Math.Min(start + BatchSize, known.Count)}/{known.Count}");
        }
        return ClassificationMetrics.Compute(card.Labels, outcomes) with { NotScored = images.Count - outcomes.Count };
    }

    /// <summary>
    /// Scores the manifest's image files. Labels are looked up by name as above: an image whose class the model does not
    /// have is not scored (and counted), rather than failing the whole evaluation.
    /// </summary>
    public static ClassificationReport Evaluate(IImageClassifier classifier, string datasetDirectory, IReadOnlyList<ManifestEntry> entries, Action<string> log)
    {
        var labels = entries.Select(e => e.Label).Distinct().ToList();
        var index = labels.Select((label, i) => (label, i)).ToDictionary(p => p.label, p => p.i);
        var images = entries.Select(e => LabelledImage.From(e.Path, index[e.Label], File.ReadAllBytes(Path.Combine(datasetDirectory, e.Path)))).ToList();
        return Evaluate(classifier, images, labels, log);
    }
}
