using WasteClassifier.Core.Inference;

namespace WasteClassifier.Components.Models;

/// <summary>Configuration section <c>Model</c>.</summary>
public sealed class ModelOptions
{
    public const string Section = "Model";

    /// <summary>The bundled model (card.json and its files), registered on first start; defaults to <c>models/default</c>.</summary>
    public string Directory { get; set; } = Path.Combine(AppContext.BaseDirectory, "models", "default");

    /// <summary>Folder of shipped backbones that cards may name; defaults to the bundled <c>backbones</c>.</summary>
    public string BackbonesDirectory { get; set; } = Path.Combine(AppContext.BaseDirectory, "backbones");

    /// <summary>How often a worker checks the registry for a newly promoted model (besides the ModelPromoted event).</summary>
    public int RefreshSeconds { get; set; } = 30;

    /// <summary>ONNX Runtime intra-op threads; 0 means one per core.</summary>
    public int InferenceThreads { get; set; }

    public InferenceOptions ToInferenceOptions() => new()
    {
        IntraOpThreads = InferenceThreads > 0 ? InferenceThreads : Environment.ProcessorCount,
        BackbonesRoot = BackbonesDirectory,
    };
}
