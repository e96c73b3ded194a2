using WasteClassifier.Core.Inference;

namespace WasteClassifier.Components.Models;

/// <summary>Configuration section <c>Model</c>.</summary>
public sealed class ModelOptions
{
    public const string Section = "Model";

    /// <summary>The model shipped beside the binaries (<c>models/default</c>).</summary>
    public static readonly string BundledDirectory = Path.Combine(AppContext.BaseDirectory, "models", "default");

    /// <summary>The bundled model (card.json and its files), registered on first start; defaults to <c>models/default</c>.</summary>
    public string Directory { get; set; } = BundledDirectory;

    /// <summary>Folder of shipped backbones that cards may name; defaults to the bundled <c>backbones</c>.</summary>
    public string BackbonesDirectory { get; set; } = Path.Combine(AppContext.BaseDirectory, "backbones");

    /// <summary>How often a worker checks the registry for a newly promoted model (besides the ModelPromoted event).</summary>
    public int RefreshSeconds { get; set; } = 30;

    /// <summary>
    /// Batches a worker runs through the model at once; 0 means one per core. Each gets its own single-threaded ONNX Runtime
    /// Run: on cores shared with the API, the database and decoding, a Run split over every core stalls whenever one of its
    /// threads is preempted (measured on 2 cores beside one busy process: 21 images/s for one 2-thread Run, 29 for two
    /// 1-thread Runs; 35–44 for both on idle cores, from run to run). See bench/run.sh.
    /// </summary>
    public int InferenceLanes { get; set; }

    /// <summary>ONNX Runtime intra-op threads per Run; 0 means the cores shared out among the lanes (serving) or all of them (training).</summary>
    public int InferenceThreads { get; set; }

    /// <summary>
    /// Most images per Run in a serving session: a batch of 16 goes through its lane as two Runs of 8, which halves the
    /// activations each lane holds. On one thread a Run costs the same per image at any batch size (measured 46 CPU ms per
    /// image at batch 1, 8 and 16). 0: the whole batch in one Run.
    /// </summary>
    public int ImagesPerRun { get; set; } = 8;

    /// <summary>The longest <see cref="RefreshSeconds"/>: a day, well within what Task.Delay takes (about 49.7 days).</summary>
    public const int MaxRefreshSeconds = 86_400;

    /// <summary>Refuses negative counts and a refresh period out of range at start, naming the setting, instead of quietly serving with the defaults.</summary>
    public ModelOptions Validated()
    {
        foreach (var (name, value) in new[] { (nameof(InferenceLanes), InferenceLanes), (nameof(InferenceThreads), InferenceThreads), (nameof(ImagesPerRun), ImagesPerRun) })
            if (value < 0) throw new InvalidOperationException($"{Section}:{name} is {value}; it must be 0 (the default) or more");
        // Above Task.Delay's limit the watcher's wait threw, which stopped the host.
        if (RefreshSeconds is < 1 or > MaxRefreshSeconds)
            throw new InvalidOperationException($"{Section}:{nameof(RefreshSeconds)} is {RefreshSeconds}; it must be 1 to {MaxRefreshSeconds} (a day)");
        return this;
    }

    public int ResolvedLanes => InferenceLanes > 0 ? InferenceLanes : Environment.ProcessorCount;

    /// <summary>The serving session: <see cref="ResolvedLanes"/> concurrent Runs.</summary>
    public InferenceOptions ToInferenceOptions() => new()
    {
        IntraOpThreads = InferenceThreads > 0 ? InferenceThreads : Math.Max(1, Environment.ProcessorCount / ResolvedLanes),
        ConcurrentRuns = ResolvedLanes,
        MaxImagesPerRun = ImagesPerRun,
        BackbonesRoot = BackbonesDirectory,
    };

    /// <summary>For one caller running batch after batch (training, evaluation): one Run at a time over every core.</summary>
    public InferenceOptions ToSequentialInferenceOptions() => new()
    {
        IntraOpThreads = InferenceThreads > 0 ? InferenceThreads : Environment.ProcessorCount,
        BackbonesRoot = BackbonesDirectory,
    };
}
