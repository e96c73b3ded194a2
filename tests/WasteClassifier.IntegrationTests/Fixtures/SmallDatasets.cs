namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>Small base datasets for training jobs in tests: manifests pointing at waste-v1's files in place.</summary>
public static class SmallDatasets
{
    /// <summary>The first <paramref name="perClass"/> images of each class; with <paramref name="shuffleLabels"/>, labels permuted at random.</summary>
    public static string Write(int perClass, bool shuffleLabels = false)
    {
        var directory = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", "datasets", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        var sample = Dataset.Sample(perClass);
        var labels = sample.Select(s => s.Label).ToArray();
        if (shuffleLabels) new Random(7).Shuffle(labels);
        File.WriteAllLines(Path.Combine(directory, "manifest.csv"),
            new[] { "path,label" }.Concat(sample.Select((s, i) => $"{s.Path},{labels[i]}")));
        return directory;
    }
}
