using Microsoft.Extensions.Configuration;

namespace WasteClassifier.Infrastructure.Hosting;

/// <summary>Top-level settings shared by every process.</summary>
public sealed class ServiceOptions
{
    /// <summary>Folder for the embedded default's database, objects and caches. Relative paths are from the working directory.</summary>
    public string DataDirectory { get; set; } = "data";

    public string ResolvedDataDirectory => Path.GetFullPath(DataDirectory);

    public static ServiceOptions From(IConfiguration configuration) =>
        new() { DataDirectory = configuration["DataDirectory"] ?? "data" };
}
