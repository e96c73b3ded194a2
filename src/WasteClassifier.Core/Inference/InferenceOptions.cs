namespace WasteClassifier.Core.Inference;

/// <summary>How a model's ONNX Runtime session is set up.</summary>
public sealed record InferenceOptions
{
    /// <summary>Threads one Run may use; defaults to every core, since a worker runs one batch at a time.</summary>
    public int IntraOpThreads { get; init; } = Environment.ProcessorCount;

    /// <summary>Folder holding the shipped backbones (one sub-folder each).</summary>
    public string BackbonesRoot { get; init; } = DefaultBackbonesRoot;

    public static string DefaultBackbonesRoot => Path.Combine(AppContext.BaseDirectory, "backbones");

    public static InferenceOptions Default { get; } = new();
}
