namespace WasteClassifier.Core.Inference;

/// <summary>The .NET runtime's generation 0 budget: how much a process allocates between collections, and so holds as garbage.</summary>
public static class ManagedHeap
{
    /// <summary>
    /// The gen 0 max budget every executable of this repository writes into its runtimeconfig.json (Directory.Build.targets).
    /// The runtime otherwise sizes it from the largest cache the CPU reports: 16 MiB on a CPU with a 32 MB L3, 80 MiB on a
    /// VM reporting its host's 504 MB L3.
    /// </summary>
    public const long Gen0MaxBudgetCapBytes = 16 * 1024 * 1024;

    /// <summary>
    /// The gen 0 max budget this process runs with, in bytes: the build's, or <c>DOTNET_GCGen0MaxBudget</c>'s where set
    /// (hexadecimal; 0 leaves it to the runtime, whose own size this then returns). 0 only if the runtime does not report it.
    /// </summary>
    public static long Gen0MaxBudgetBytes() =>
        GC.GetConfigurationVariables().TryGetValue("GCGen0MaxBudget", out var bytes) ? Convert.ToInt64(bytes) : 0;
}
