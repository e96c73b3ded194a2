using System.Collections.Concurrent;
using System.Security.Cryptography;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.Core.Training;

/// <summary>
/// Computes (or reads from the cache) every view's features for every image of a manifest. An image that will not
/// decode, or a JPEG cut short, is left out and listed in <see cref="Unreadable"/>: one bad labelled upload must not fail
/// every later job.
/// </summary>
public sealed class FeatureExtractionRunner(FeatureExtractor extractor, FeatureCache cache, Action<string> log)
{
    private const int ImagesPerRun = 16;
    private readonly ConcurrentDictionary<string, UnreadableImage> _unreadable = new();

    /// <summary>The images the runs so far left out because they would not decode, with the decoder's reason.</summary>
    public IReadOnlyList<UnreadableImage> Unreadable => _unreadable.Values.OrderBy(u => u.Path, StringComparer.Ordinal).ToList();

    public IReadOnlyList<FeatureSample> Run(string datasetDirectory, IReadOnlyList<ManifestEntry> entries, IReadOnlyList<string> labels, IReadOnlyList<FeatureView> views)
    {
        var images = LoadDataset(datasetDirectory, entries, labels);
        if (images.Count < entries.Count) log($"{entries.Count - images.Count} duplicate image(s) left out: of the same bytes the last entry's label is used");
        return Run(images, views);
    }

    /// <summary>A dataset folder's images, one per content as a training job loads its base dataset (<see cref="LabelledImage.DistinctByContent"/>).</summary>
    public static IReadOnlyList<LabelledImage> LoadDataset(string datasetDirectory, IReadOnlyList<ManifestEntry> entries, IReadOnlyList<string> labels) =>
        LabelledImage.DistinctByContent(entries.Select(e => LoadImage(datasetDirectory, e, labels)));

    /// <summary>
    /// Features of images already in memory (from any source). <paramref name="onProgress"/> receives the fraction
    /// of images done; cancellation is checked between runs of the backbone.
    /// </summary>
    public IReadOnlyList<FeatureSample> Run(IReadOnlyList<LabelledImage> images, IReadOnlyList<FeatureView> views,
        Action<double>? onProgress = null, CancellationToken cancellationToken = default)
    {
        // A JPEG cut short is never trained on, as it is never classified (evaluate and uploads refuse it); LoadResized
        // would decode it as far as its data goes. Checked before the cache, which may hold its features from before the rule.
        foreach (var image in images.Where(i => JpegEnd.IsTruncated(i.Bytes)))
            _unreadable.TryAdd(image.Path, new UnreadableImage(image.Path, $"{ImageErrors.Truncated}: {ImageTensorWriter.TruncatedMessage}"));
        var missing = images.Where(i => !_unreadable.ContainsKey(i.Path) && views.Any(v => !cache.TryGet(v.Name, i.Sha256, out _))).ToList();
        log($"{images.Count} images, {views.Count} views each; {images.Count - missing.Count} fully cached, {missing.Count} to extract");

        var started = System.Diagnostics.Stopwatch.StartNew();
        for (var start = 0; start < missing.Count; start += ImagesPerRun)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ExtractMissing(missing.Skip(start).Take(ImagesPerRun).ToList(), views);
            var done = Math.Min(start + ImagesPerRun, missing.Count);
            onProgress?.Invoke((double)done / missing.Count);
            if (done % (ImagesPerRun * 20) == 0 || done == missing.Count)
                log($"extracted {done}/{missing.Count} images ({done / Math.Max(0.001, started.Elapsed.TotalSeconds):F1} images/s)");
        }

        if (!_unreadable.IsEmpty) log($"{_unreadable.Count} image(s) left out: they would not decode or were cut short");
        return images.Where(i => !_unreadable.ContainsKey(i.Path)).Select(i => new FeatureSample(i.Path, i.Label, i.Sha256, HoldOutSplit.IsHoldOut(i.Sha256),
            views.ToDictionary(v => v.Name, v => cache.TryGet(v.Name, i.Sha256, out var f) ? f : throw new InvalidOperationException("feature missing after extraction"))))
            .ToList();
    }

    private void ExtractMissing(IReadOnlyList<LabelledImage> batch, IReadOnlyList<FeatureView> views)
    {
        var input = extractor.Backbone.Input;
        var tensorLength = 3 * input.Width * input.Height;
        var jobs = batch.SelectMany(image => views.Where(v => !cache.TryGet(v.Name, image.Sha256, out _)).Select(v => (image, view: v))).ToList();
        var tensors = new float[jobs.Count * tensorLength];
        // Decoding and resizing cost about as much as the network; spread them over the cores.
        Parallel.For(0, jobs.Count, j =>
        {
            try
            {
                jobs[j].view.Render(jobs[j].image.Bytes, input, tensors.AsSpan(j * tensorLength, tensorLength));
            }
            catch (Exception e) when (ImageTensorWriter.IsDecoderFailure(e))
            {
                _unreadable.TryAdd(jobs[j].image.Path, new UnreadableImage(jobs[j].image.Path, ImageTensorWriter.DescribeFailure(e)));
            }
        });

        // Only the images every view of which rendered go through the network: their tensors move up over the gaps.
        var rendered = new List<(LabelledImage image, FeatureView view)>(jobs.Count);
        for (var j = 0; j < jobs.Count; j++)
        {
            if (_unreadable.ContainsKey(jobs[j].image.Path)) continue;
            if (rendered.Count != j) tensors.AsSpan(j * tensorLength, tensorLength).CopyTo(tensors.AsSpan(rendered.Count * tensorLength, tensorLength));
            rendered.Add(jobs[j]);
        }
        if (rendered.Count == 0) return;
        var features = extractor.Extract(tensors.AsMemory(0, rendered.Count * tensorLength), rendered.Count);
        foreach (var group in rendered.Select((job, j) => (job, features: features[j])).GroupBy(x => x.job.view.Name))
            cache.Add(group.Key, group.Select(x => (x.job.image.Sha256, x.features)).ToList());
    }

    private static LabelledImage LoadImage(string datasetDirectory, ManifestEntry entry, IReadOnlyList<string> labels)
    {
        var label = IndexOfLabel(labels, entry.Label);
        var path = Path.Combine(datasetDirectory, entry.Path);
        if (!File.Exists(path)) throw new FileNotFoundException($"image listed in the manifest not found: {path}", path);
        var bytes = File.ReadAllBytes(path);
        return new LabelledImage(entry.Path, label, SHA256.HashData(bytes), bytes);
    }

    public static int IndexOfLabel(IReadOnlyList<string> labels, string label)
    {
        for (var i = 0; i < labels.Count; i++)
            if (labels[i] == label) return i;
        throw new InvalidDataException($"label '{label}' is not one of: {string.Join(", ", labels)}");
    }
}

/// <summary>A training image that would not decode, and why.</summary>
public sealed record UnreadableImage(string Path, string Reason);
