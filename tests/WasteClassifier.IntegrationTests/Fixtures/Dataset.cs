namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>The labelled photographs in ../shared/datasets/waste-v1, read in place (never copied into the repo).</summary>
public static class Dataset
{
    public static string Root { get; } = FindRoot();

    /// <summary>(path, label) rows of manifest.csv, in file order.</summary>
    public static IReadOnlyList<(string Path, string Label)> Manifest { get; } = ReadManifest();

    /// <summary>The first <paramref name="perClass"/> images of each class, in class order.</summary>
    public static IReadOnlyList<(string Path, string Label)> Sample(int perClass) =>
        Manifest.GroupBy(m => m.Label).SelectMany(g => g.Take(perClass)).ToList();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "WasteClassifier.sln")))
            {
                var root = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "datasets", "waste-v1"));
                if (Directory.Exists(root)) return root;
                throw new DirectoryNotFoundException($"the dataset is expected at {root}");
            }
        }
        throw new DirectoryNotFoundException("WasteClassifier.sln not found above the test binaries");
    }

    private static List<(string Path, string Label)> ReadManifest()
    {
        var lines = File.ReadAllLines(Path.Combine(Root, "manifest.csv"));
        var header = lines[0].Split(',');
        int path = Array.IndexOf(header, "path"), label = Array.IndexOf(header, "label");
        return lines.Skip(1).Where(l => l.Length > 0).Select(l => l.Split(','))
            .Select(f => (Path.Combine(Root, f[path]), f[label])).ToList();
    }
}
