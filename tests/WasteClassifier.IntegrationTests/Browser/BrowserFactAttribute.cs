namespace WasteClassifier.IntegrationTests.Browser;

/// <summary>
/// A test that drives Debian's chromium through npm playwright-core (tests/tooling). Outside CI it is skipped when
/// either is missing; on CI (CI=true) it runs and fails, since tests/tooling/start-services.sh installs both.
/// </summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public BrowserFactAttribute()
    {
        if (BrowserTooling.Missing() is { } missing && !Fixtures.TestServices.IsCi)
            Skip = $"{missing}: run tests/tooling/start-services.sh (installs chromium and the npm tooling)";
    }
}

public static class BrowserTooling
{
    public static string ChromiumPath => Environment.GetEnvironmentVariable("CHROMIUM_PATH") ?? "/usr/bin/chromium";

    public static string RepositoryRoot { get; } = FindRoot();

    public static string ToolingDirectory => Path.Combine(RepositoryRoot, "tests", "tooling");

    /// <summary>What is missing to run the browser test, or null.</summary>
    public static string? Missing()
    {
        if (!File.Exists(ChromiumPath)) return $"no chromium at {ChromiumPath}";
        if (!Directory.Exists(Path.Combine(ToolingDirectory, "node_modules", "playwright-core"))) return "playwright-core is not installed in tests/tooling";
        return null;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "WasteClassifier.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("WasteClassifier.sln not found above the test binaries");
    }
}
