namespace WasteClassifier.Core.Inference;

/// <summary>The .NET runtime's generation 0 budget: how much a process allocates between collections, and so holds as garbage.</summary>
public static class ManagedHeap
{
    /// <summary>
    /// The cap every executable of this repository writes into its runtimeconfig.json (Directory.Build.targets). Without it
    /// the runtime sizes gen 0 from the largest cache the CPU reports: 80 MiB on a VM reporting its host's 504 MB L3.
    /// </summary>
    public const long Gen0MaxBudgetCapBytes = 16 * 1024 * 1024;

    /// <summary>
    /// The largest gen 0 budget this process runs with: the build's cap, <c>DOTNET_GCGen0MaxBudget</c> where set (0: the
    /// runtime's own size), or the runtime's own size.
    /// </summary>
    public static long Gen0MaxBudgetBytes() =>
        GC.GetConfigurationVariables().TryGetValue("GCGen0MaxBudget", out var bytes) ? Convert.ToInt64(bytes) : 0;
}
