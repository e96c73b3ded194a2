namespace WasteClassifier.Core.Inference;

/// <summary>How a model's ONNX Runtime session is set up.</summary>
public sealed record InferenceOptions
{
    /// <summary>Threads one Run may use; defaults to every core, for callers that run one batch at a time.</summary>
    public int IntraOpThreads { get; init; } = Environment.ProcessorCount;

    /// <summary>
    /// Runs that may execute on the session at once, each with <see cref="IntraOpThreads"/> threads (ONNX Runtime's Run
    /// is thread-safe). A worker sharing its cores uses one single-threaded Run per core: see ModelOptions.InferenceLanes.
    /// </summary>
    public int ConcurrentRuns { get; init; } = 1;

    /// <summary>
    /// Most images in one Run; a bigger batch goes through as several Runs, one after another. 0: no limit. A Run's
    /// activations grow with its images (ResNet18 at 224²: about 6 MB per image), and each concurrent Run holds its own.
    /// </summary>
    public int MaxImagesPerRun { get; init; }

    /// <summary>
    /// Whether a Run's idle intra-op threads spin between operators (ONNX Runtime's default) rather than sleep. Spinning
    /// answers a lone image sooner on cores of its own, and burns the CPU that a worker's neighbours on shared cores need.
    /// </summary>
    public bool SpinIdleThreads { get; init; }

    /// <summary>Folder holding the shipped backbones (one sub-folder each).</summary>
    public string BackbonesRoot { get; init; } = DefaultBackbonesRoot;

    public static string DefaultBackbonesRoot => Path.Combine(AppContext.BaseDirectory, "backbones");

    public static InferenceOptions Default { get; } = new();
}
