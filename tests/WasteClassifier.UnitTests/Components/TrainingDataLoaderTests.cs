using System.Data.Common;
using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using WasteClassifier.Components.Training;
using WasteClassifier.Core.Training;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Components;

/// <summary>
/// The evaluation hold-out grades the candidate and the active model: a labelled sample (a correction, an upload) with the
/// bytes of a trusted dataset image joins it only where the trusted dataset has no label for them.
/// </summary>
public sealed class TrainingDataLoaderTests : IDisposable
{
    private static readonly string[] Labels = ["glass", "paper"];
    private readonly InMemoryDatabase _database = new();
    private readonly MemoryObjectStore _store = new();
    private readonly DirectoryInfo _dataset = Directory.CreateTempSubdirectory("wc-trusted-dataset-");

    [Fact]
    public async Task EvaluationHoldOut_SampleRelabellingATrustedImage_KeepsTheTrustedLabelAndCountsTheConflict()
    {
        var relabelled = HoldOutImage(seed: 1);
        var confirmed = HoldOutImage(seed: 2);
        var sampleOnly = HoldOutImage(seed: 3);
        WriteDataset(("glass/a.jpg", relabelled, "glass"), ("paper/b.jpg", confirmed, "paper"));
        await AddSampleAsync(relabelled, "paper", SampleOrigin.Feedback);
        await AddSampleAsync(confirmed, "paper", SampleOrigin.Upload);
        await AddSampleAsync(sampleOnly, "glass", SampleOrigin.Upload);
        var loader = new TrainingDataLoader(_database.Context, _store,
            new TrainingSettings { Datasets = { ["trusted"] = _dataset.FullName }, BaseDataset = "trusted" });

        var (images, conflicts) = await loader.LoadEvaluationHoldOutAsync(new TrainingJobOptions(), Labels, CancellationToken.None);

        Assert.Equal("glass", LabelOf(images, relabelled));
        Assert.Equal("paper", LabelOf(images, confirmed));
        Assert.Equal("glass", LabelOf(images, sampleOnly));
        Assert.Equal(3, images.Count);
        Assert.Equal(1, conflicts);
    }

    [Fact]
    public async Task EvaluationHoldOut_SamplesOfTheSameBytes_LatestWinsAndConflictsCountTrustedImagesOnce()
    {
        var trustedImage = HoldOutImage(seed: 4);
        var uploadedTwice = HoldOutImage(seed: 5);
        WriteDataset(("glass/a.jpg", trustedImage, "glass"));
        // Two corrections disagree with one trusted image: one conflict. Two samples of other bytes disagree with each other
        // (written newest first): the latest wins, and no trusted label is in question.
        await AddSampleAsync(trustedImage, "paper", SampleOrigin.Feedback, DateTime.UtcNow.AddMinutes(-2));
        await AddSampleAsync(trustedImage, "paper", SampleOrigin.Feedback, DateTime.UtcNow.AddMinutes(-1));
        await AddSampleAsync(uploadedTwice, "glass", SampleOrigin.Feedback, DateTime.UtcNow);
        await AddSampleAsync(uploadedTwice, "paper", SampleOrigin.Upload, DateTime.UtcNow.AddMinutes(-5));
        var loader = new TrainingDataLoader(_database.Context, _store,
            new TrainingSettings { Datasets = { ["trusted"] = _dataset.FullName }, BaseDataset = "trusted" });

        var (images, conflicts) = await loader.LoadEvaluationHoldOutAsync(new TrainingJobOptions { IncludeFeedback = true }, Labels, CancellationToken.None);

        Assert.Equal("glass", LabelOf(images, trustedImage));
        Assert.Equal("glass", LabelOf(images, uploadedTwice));
        Assert.Equal(1, conflicts);
    }

    [Fact]
    public async Task LoadJob_SampleDeletedWhileTheJobLoads_OneSnapshotForTrainingAndHoldOut()
    {
        // The samples were read once for the training data and again for the hold-out: a DELETE between the two left a
        // hold-out sample in the first and not the second, counted as hold_out_not_scored (a relabel, as a conflict).
        var deleted = HoldOutImage(seed: 6);
        WriteDataset(("glass/a.jpg", HoldOutImage(seed: 7), "glass"));
        var sampleId = await AddSampleAsync(deleted, "paper", SampleOrigin.Upload);
        var reads = new DeleteBeforeTheSecondRead(_database, sampleId);
        await using var db = _database.NewContext(reads);
        var loader = new TrainingDataLoader(db, _store, new TrainingSettings { Datasets = { ["trusted"] = _dataset.FullName }, BaseDataset = "trusted" });

        var (images, (holdOut, conflicts)) = await loader.LoadJobAsync(new TrainingJobOptions(), Labels, CancellationToken.None);

        Assert.Equal("paper", LabelOf(images, deleted));
        Assert.Equal("paper", LabelOf(holdOut, deleted));
        Assert.Equal(2, holdOut.Count);
        Assert.Equal(0, conflicts);
        Assert.Equal(0, TrainingJobRunner.HoldOutNotScored(images, holdOut));
        Assert.Equal(1, reads.SampleReads);
    }

    [Fact]
    public async Task LoadJob_DatasetWithDuplicateImages_TrainsOnWhatWastectlTrainTrainsOn()
    {
        // The same bytes listed twice under different labels, and twice under one: the job keeps one of each (the last
        // entry's label), and wastectl train must too, or the two record different images per label and fingerprints for
        // the same folder and the promotion gate takes one for new data.
        var relabelled = TrainingImage(seed: 8);
        var listedTwice = TrainingImage(seed: 9);
        WriteDataset(("glass/a.jpg", relabelled, "glass"), ("glass/b.jpg", listedTwice, "glass"), ("paper/a-again.jpg", relabelled, "paper"),
            ("glass/b-again.jpg", listedTwice, "glass"), ("paper/c.jpg", TrainingImage(seed: 10), "paper"));
        var loader = new TrainingDataLoader(_database.Context, _store, new TrainingSettings { Datasets = { ["trusted"] = _dataset.FullName }, BaseDataset = "trusted" });

        var (job, _) = await loader.LoadJobAsync(new TrainingJobOptions { BaseDataset = "trusted" }, Labels, CancellationToken.None);
        var cli = FeatureExtractionRunner.LoadDataset(_dataset.FullName, DatasetManifest.Read(_dataset.FullName), Labels);

        static IReadOnlyList<(byte[], string)> Pairs(IEnumerable<LabelledImage> images) =>
            [.. images.Where(i => !HoldOutSplit.IsHoldOut(i.Sha256)).Select(i => (i.Sha256, Labels[i.Label]))];
        Assert.Equal(3, Pairs(job).Count);
        Assert.Equal("paper", LabelOf(job, relabelled));
        Assert.Equal(TrainingDataFingerprint.Of(Pairs(job)), TrainingDataFingerprint.Of(Pairs(cli)));
        Assert.Equal(Pairs(job).CountBy(p => p.Item2).OrderBy(c => c.Key, StringComparer.Ordinal), Pairs(cli).CountBy(p => p.Item2).OrderBy(c => c.Key, StringComparer.Ordinal));
    }

    /// <summary>Counts the reads of labelled_samples; before any after the first, the sample is deleted (DELETE /v1/samples/{id}).</summary>
    private sealed class DeleteBeforeTheSecondRead(InMemoryDatabase database, Guid sampleId) : DbCommandInterceptor
    {
        public int SampleReads { get; private set; }

        public override async ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        {
            if (!command.CommandText.Contains("labelled_samples", StringComparison.Ordinal)) return result;
            if (++SampleReads == 2)
            {
                await using var other = database.NewContext();
                await other.LabelledSamples.Where(s => s.Id == sampleId).ExecuteDeleteAsync(cancellationToken);
            }
            return result;
        }
    }

    private static string LabelOf(IReadOnlyList<LabelledImage> images, byte[] bytes) =>
        Labels[images.Single(i => i.Sha256.AsSpan().SequenceEqual(SHA256.HashData(bytes))).Label];

    /// <summary>Bytes (not an image: the loader does not decode) whose content hash puts them on the training side.</summary>
    private static byte[] TrainingImage(int seed)
    {
        var random = new Random(seed);
        while (true)
        {
            var bytes = new byte[64];
            random.NextBytes(bytes);
            if (!HoldOutSplit.IsHoldOut(SHA256.HashData(bytes))) return bytes;
        }
    }

    /// <summary>Bytes (not an image: the loader does not decode) whose content hash puts them in the hold-out.</summary>
    private static byte[] HoldOutImage(int seed)
    {
        var random = new Random(seed);
        while (true)
        {
            var bytes = new byte[64];
            random.NextBytes(bytes);
            if (HoldOutSplit.IsHoldOut(SHA256.HashData(bytes))) return bytes;
        }
    }

    private void WriteDataset(params (string Path, byte[] Bytes, string Label)[] entries)
    {
        foreach (var (path, bytes, _) in entries)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(_dataset.FullName, path))!);
            File.WriteAllBytes(Path.Combine(_dataset.FullName, path), bytes);
        }
        File.WriteAllLines(Path.Combine(_dataset.FullName, DatasetManifest.FileName), ["path,label", .. entries.Select(e => $"{e.Path},{e.Label}")]);
    }

    private async Task<Guid> AddSampleAsync(byte[] bytes, string label, string origin, DateTime? createdAt = null)
    {
        var hash = Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();
        var key = $"images/{Guid.NewGuid():N}";
        await _store.PutAsync(key, bytes, "image/jpeg", CancellationToken.None);
        // Content hashes are not unique across uploads: each sample here has its own stored image.
        var image = new StoredImage { Id = Guid.NewGuid(), ObjectKey = key, ContentHash = hash, Format = "jpeg", SizeBytes = bytes.Length, CreatedAt = DateTime.UtcNow };
        var id = Guid.NewGuid();
        _database.Context.LabelledSamples.Add(new LabelledSample
        {
            Id = id,
            Image = image,
            Label = label,
            Origin = origin,
            CreatedAt = createdAt ?? DateTime.UtcNow,
        });
        await _database.Context.SaveChangesAsync();
        return id;
    }

    public void Dispose()
    {
        _database.Dispose();
        _dataset.Delete(recursive: true);
    }
}
