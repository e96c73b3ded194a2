namespace WasteClassifier.UnitTests.Support;

/// <summary>Locates the repository (the folder holding WasteClassifier.sln) and the shared data beside it.</summary>
public static class TestPaths
{
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    public static string Dataset => Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared", "datasets", "waste-v1"));

    public static string DefaultModel => Path.Combine(AppContext.BaseDirectory, "models", "default");

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "WasteClassifier.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no WasteClassifier.sln above {AppContext.BaseDirectory}");
    }
}
