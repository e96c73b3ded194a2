using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using WasteClassifier.Core.Training;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Components.Training;

/// <summary>Gathers a job's training set: the base dataset's files plus labelled samples from the object store.</summary>
public sealed class TrainingDataLoader(ClassifierDbContext db, IObjectStore store, TrainingSettings settings, ILogger<TrainingDataLoader>? logger = null)
{
    /// <summary>What a job trains on (its base dataset and the samples) and is scored on (<see cref="LoadEvaluationHoldOutAsync"/>).</summary>
    public sealed record JobData(IReadOnlyList<LabelledImage> Images, EvaluationHoldOut HoldOut);

    /// <summary>
    /// A job's data and hold-out from one read of the labelled samples: read twice, a sample deleted or relabelled between
    /// the reads was in one and not the other (counted as hold_out_not_scored, or as a label conflict).
    /// </summary>
    public async Task<JobData> LoadJobAsync(TrainingJobOptions options, IReadOnlyList<string> labels, CancellationToken cancellationToken)
    {
        var samples = await LoadSamplesAsync(options, labels, cancellationToken);
        return new JobData(await LoadAsync(options, labels, samples, cancellationToken), await LoadEvaluationHoldOutAsync(labels, samples, cancellationToken));
    }

    /// <summary>A job's data: its base dataset plus labelled samples, by content; a sample's label wins for the same bytes.</summary>
    private async Task<IReadOnlyList<LabelledImage>> LoadAsync(TrainingJobOptions options, IReadOnlyList<string> labels, List<LabelledImage> samples,
        CancellationToken cancellationToken)
        => LabelledImage.DistinctByContent([.. await LoadDatasetAsync(options.BaseDataset, labels, cancellationToken), .. samples]);

    private async Task<List<LabelledImage>> LoadSamplesAsync(TrainingJobOptions options, IReadOnlyList<string> labels, CancellationToken cancellationToken)
    {
        var samples = await db.LabelledSamples.AsNoTracking().Include(s => s.Image)
            .Where(s => s.Origin == SampleOrigin.Upload || (options.IncludeFeedback && s.Origin == SampleOrigin.Feedback))
            // Oldest first, so that of samples with the same bytes (a correction of an upload, an image uploaded twice) the
            // latest label wins, the same at every job.
            .OrderBy(s => s.CreatedAt).ThenBy(s => s.Id)
            .ToListAsync(cancellationToken);
        using var fetching = new SemaphoreSlim(8);
        var fetched = await Task.WhenAll(samples.Select(async sample =>
        {
            await fetching.WaitAsync(cancellationToken);
            try
            {
                return (sample, bytes: await store.GetAsync(sample.Image!.ObjectKey, cancellationToken));
            }
            finally
            {
                fetching.Release();
            }
        }));
        return fetched.Where(f => f.bytes is not null && labels.Contains(f.sample.Label))
            .Select(f => LabelledImage.From(f.sample.Image!.ObjectKey, FeatureExtractionRunner.IndexOfLabel(labels, f.sample.Label), f.bytes!))
            .ToList();
    }

    /// <summary>The evaluation hold-out, and how many of its trusted images a labelled sample of the same bytes labels otherwise.</summary>
    public sealed record EvaluationHoldOut(IReadOnlyList<LabelledImage> Images, int LabelConflicts);

    /// <summary>
    /// The fixed hold-out every candidate and the active model are scored on: the hold-out part of the trusted
    /// evaluation dataset plus that of the labelled samples — never what a job brought as its own base data. For the same
    /// bytes the trusted label wins: a wrong correction or upload must not move the grade of both models.
    /// </summary>
    public async Task<EvaluationHoldOut> LoadEvaluationHoldOutAsync(TrainingJobOptions options, IReadOnlyList<string> labels, CancellationToken cancellationToken) =>
        await LoadEvaluationHoldOutAsync(labels, await LoadSamplesAsync(options, labels, cancellationToken), cancellationToken);

    private async Task<EvaluationHoldOut> LoadEvaluationHoldOutAsync(IReadOnlyList<string> labels, List<LabelledImage> samples, CancellationToken cancellationToken)
    {
        var images = new Dictionary<string, LabelledImage>();
        foreach (var image in await LoadDatasetAsync(settings.EvaluationDataset ?? settings.BaseDataset, labels, cancellationToken)) Add(images, image);
        // Only these keep their label: among samples of the same bytes the latest wins, as in training, and is no conflict.
        var trusted = images.Keys.ToHashSet();
        var conflicts = new HashSet<string>();
        foreach (var image in samples)
        {
            var key = Key(image);
            if (!trusted.Contains(key))
                Add(images, image);
            else if (images[key].Label != image.Label && HoldOutSplit.IsHoldOut(image.Sha256))
                conflicts.Add(key);
        }
        return new EvaluationHoldOut(images.Values.Where(i => HoldOutSplit.IsHoldOut(i.Sha256)).ToList(), conflicts.Count);
    }

    private async Task<List<LabelledImage>> LoadDatasetAsync(string name, IReadOnlyList<string> labels, CancellationToken cancellationToken)
    {
        var images = new List<LabelledImage>();
        if (settings.ResolveDataset(name, logger) is not { } directory) return images;
        foreach (var entry in DatasetManifest.Read(directory))
        {
            var bytes = await File.ReadAllBytesAsync(Path.Combine(directory, entry.Path), cancellationToken);
            images.Add(LabelledImage.From(entry.Path, FeatureExtractionRunner.IndexOfLabel(labels, entry.Label), bytes));
        }
        return images;
    }

    private static void Add(Dictionary<string, LabelledImage> images, LabelledImage image) => images[Key(image)] = image;

    private static string Key(LabelledImage image) => Convert.ToHexString(image.Sha256);
}
