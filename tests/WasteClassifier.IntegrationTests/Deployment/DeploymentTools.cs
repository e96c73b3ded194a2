using System.Diagnostics;
using WasteClassifier.IntegrationTests.Browser;
using WasteClassifier.IntegrationTests.Fixtures;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace WasteClassifier.IntegrationTests.Deployment;

/// <summary>A test that needs docker-compose and kubectl; skipped outside CI when missing, failed on CI (start-services.sh installs docker-compose; kubectl must be on the PATH).</summary>
public sealed class DeploymentFactAttribute : FactAttribute
{
    public DeploymentFactAttribute()
    {
        if (DeploymentTools.Missing() is { } missing && !TestServices.IsCi) Skip = $"{missing}: run tests/tooling/start-services.sh";
    }
}

public static class DeploymentTools
{
    public static string Root => BrowserTooling.RepositoryRoot;

    public static string? Missing() =>
        Which("docker-compose") is null ? "docker-compose is not installed" : Which("kubectl") is null ? "kubectl is not installed" : null;

    private static string? Which(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);

    public static Task<string> RunAsync(string tool, params string[] arguments) => RunAsync(new Dictionary<string, string?>(), tool, arguments);

    /// <summary>Runs <paramref name="tool"/> with <paramref name="environment"/> added to this process's (a null value removes a variable).</summary>
    public static async Task<string> RunAsync(IReadOnlyDictionary<string, string?> environment, string tool, params string[] arguments)
    {
        var (exitCode, stdout, stderr) = await TryRunAsync(environment, tool, arguments);
        Assert.True(exitCode == 0, $"{tool} {string.Join(' ', arguments)} exited with {exitCode}: {stderr}");
        return stdout;
    }

    /// <summary>As <see cref="RunAsync(IReadOnlyDictionary{string, string?}, string, string[])"/>, for a run expected to fail.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> TryRunAsync(IReadOnlyDictionary<string, string?> environment, string tool, params string[] arguments)
    {
        var start = new ProcessStartInfo(tool) { WorkingDirectory = Root, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        foreach (var (name, value) in environment)
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Every YAML document in <paramref name="yaml"/> as nested dictionaries and lists.</summary>
    public static IReadOnlyList<Dictionary<object, object>> Documents(string yaml)
    {
        var deserializer = new DeserializerBuilder().Build();
        var parser = new Parser(new StringReader(yaml));
        parser.Consume<StreamStart>();
        var documents = new List<Dictionary<object, object>>();
        while (parser.Accept<DocumentStart>(out _))
            if (deserializer.Deserialize<Dictionary<object, object>?>(parser) is { } document) documents.Add(document);
        return documents;
    }

    public static object? At(object? node, params string[] path)
    {
        foreach (var key in path)
            node = node is Dictionary<object, object> map && map.TryGetValue(key, out var next) ? next : null;
        return node;
    }

    public static IEnumerable<object> List(object? node) => node as List<object> ?? [];

    /// <summary>An image reference with an explicit tag (or digest) that is not "latest".</summary>
    public static bool IsPinned(string image)
    {
        if (image.Contains("@sha256:", StringComparison.Ordinal)) return true;
        var name = image[(image.LastIndexOf('/') + 1)..];
        var colon = name.LastIndexOf(':');
        return colon > 0 && name[(colon + 1)..] is { Length: > 0 } tag && tag != "latest";
    }
}
