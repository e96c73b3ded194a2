using System.Buffers;
using System.Diagnostics;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using WasteClassifier.Core.Inference;
using WasteClassifier.MemoryBench;

// The worker's classification path without its host (bench/memory/run.sh builds and runs it):
//   dotnet bench/memory/bin/Release/net10.0/WasteClassifier.MemoryBench.dll [batches per phase, default 60] [model-only]
// "model-only" skips the pipeline phases: load, then the model alone at batch 16 (for throughput comparisons).
// Env: MEMORY_BENCH_DATASET (../shared/datasets/waste-v1), Model__Directory (models/default), Model__BackbonesDirectory,
// Model__InferenceThreads and Worker__DecodeParallelism (both default to the core count, as in the worker);
// MEMORY_BENCH_CAMERA_BATCHES (0): batches of 16 camera-sized (1920×1080) JPEGs at the end;
// MEMORY_BENCH_TRACE_LOAD=1: resident size every 20 ms while the model loads;
// MEMORY_BENCH_TENSOR_POOL=shared: tensors from ArrayPool<float>.Shared sized to each batch, as the processor did before
// it used BatchTensorPool (one full-batch tensor per batch in flight).
var batchesPerPhase = args.Length > 0 && int.TryParse(args[0], out var n) && n > 0 ? n : 60;
var modelOnlyMode = args.Contains("model-only");
var root = FindRepositoryRoot();
var datasetDirectory = Environment.GetEnvironmentVariable("MEMORY_BENCH_DATASET") ?? Path.Combine(root, "..", "shared", "datasets", "waste-v1");
var modelDirectory = Environment.GetEnvironmentVariable("Model__Directory") ?? Path.Combine(AppContext.BaseDirectory, "models", "default");
var options = new InferenceOptions
{
    IntraOpThreads = EnvInt("Model__InferenceThreads") ?? Environment.ProcessorCount,
    BackbonesRoot = Environment.GetEnvironmentVariable("Model__BackbonesDirectory") ?? InferenceOptions.DefaultBackbonesRoot,
};
var decodeParallelism = EnvInt("Worker__DecodeParallelism") ?? Environment.ProcessorCount;
var cameraBatches = EnvInt("MEMORY_BENCH_CAMERA_BATCHES") ?? 0;
var fullBatchTensorPool = Environment.GetEnvironmentVariable("MEMORY_BENCH_TENSOR_POOL") != "shared";
var imagePaths = File.ReadLines(Path.Combine(datasetDirectory, "manifest.csv")).Skip(1)
    .Select(line => Path.Combine(datasetDirectory, line[..line.IndexOf(',')])).ToArray();
var nextImage = 0;
// A fresh byte[] per image, as the object store hands them out; a fixed stride walks the whole dataset.
Task<byte[]> FetchDatasetImage() =>
    File.ReadAllBytesAsync(imagePaths[(int)((uint)Interlocked.Increment(ref nextImage) * 7919u % (uint)imagePaths.Length)]);

Console.WriteLine($"# memory bench: {batchesPerPhase} batches per phase, {options.IntraOpThreads} intra-op threads, decode parallelism {decodeParallelism}, " +
    $"{imagePaths.Length} images, tensor pool {(fullBatchTensorPool ? "BatchTensorPool (full batch)" : "ArrayPool<float>.Shared (batch-sized)")}; {ProcessMemory.Settings()}");
var report = new PhaseReport();
report.Start("start");
report.End();

report.Start("load");
var loadWatch = Stopwatch.StartNew();
using var loadTrace = Environment.GetEnvironmentVariable("MEMORY_BENCH_TRACE_LOAD") == "1" ? ResidentTrace.Start(TimeSpan.FromMilliseconds(20)) : null;
using var classifier = ModelLoader.Load(modelDirectory, options);
loadTrace?.Print();
report.End($"{loadWatch.ElapsedMilliseconds} ms");

var tensorPool = fullBatchTensorPool ? new BatchTensorPool(maxRetained: 2) : ArrayPool<float>.Shared;
var pipeline = new WorkerPipeline(classifier, decodeParallelism, tensorPool);
var random = new Random(42);
(string Name, int[] Sizes)[] phases =
[
    ("batch 16", Enumerable.Repeat(16, batchesPerPhase).ToArray()),
    ("batch 1", Enumerable.Repeat(1, batchesPerPhase).ToArray()),
    ("mixed 1-16", Enumerable.Range(0, batchesPerPhase).Select(_ => random.Next(1, 17)).ToArray()),
    ("batch 16 again", Enumerable.Repeat(16, batchesPerPhase).ToArray()),
];
foreach (var (name, sizes) in modelOnlyMode ? [] : phases)
{
    report.Start(name);
    var result = await pipeline.RunAsync(sizes, depth: 2, FetchDatasetImage);
    report.End($"{result.Images} images, inference {result.ImagesPerInferenceSecond:F1} images/s, wall {result.ImagesPerWallSecond:F1} images/s");
}

// The model alone on one prepared batch of 16, nothing overlapping: the throughput figure to compare between builds.
report.Start("model only, batch 16");
var (modelImagesPerSecond, modelCpuMsPerImage) = pipeline.ModelOnly(16, runs: modelOnlyMode ? batchesPerPhase : Math.Max(3, batchesPerPhase / 4), () => File.ReadAllBytes(imagePaths[0]));
report.End($"{modelImagesPerSecond:F1} images/s, {modelCpuMsPerImage:F1} CPU ms per image");

if (cameraBatches > 0)
{
    var camera = CameraSized(imagePaths.Take(16), 1920, 1080);
    var nextCamera = 0;
    report.Start("camera 1920×1080, batch 16");
    var result = await pipeline.RunAsync(Enumerable.Repeat(16, cameraBatches).ToArray(), depth: 2,
        () => Task.FromResult(camera[Interlocked.Increment(ref nextCamera) % camera.Count].ToArray()));
    report.End($"{result.Images} images, inference {result.ImagesPerInferenceSecond:F1} images/s, wall {result.ImagesPerWallSecond:F1} images/s");

    // Decoding alone (ImageSharp's buffers), as fast as the cores go.
    report.Start("camera 1920×1080, decode only");
    var (decodedPerSecond, decodeCpuMs) = pipeline.DecodeOnly(cameraBatches * 16, () => camera[Interlocked.Increment(ref nextCamera) % camera.Count]);
    report.End($"{decodedPerSecond:F1} images/s, {decodeCpuMs:F1} CPU ms per image");
}
report.PrintSummary();
// Diagnostic only, after every measurement: how much of the managed heap was live (pooled buffers) rather than garbage.
Console.WriteLine($"managed heap live after a full collection: {GC.GetTotalMemory(forceFullCollection: true) / 1048576.0:F0} MB");
return;

static int? EnvInt(string name) => int.TryParse(Environment.GetEnvironmentVariable(name), out var value) && value > 0 ? value : null;

static string FindRepositoryRoot()
{
    for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        if (File.Exists(Path.Combine(directory.FullName, "WasteClassifier.sln"))) return directory.FullName;
    return Directory.GetCurrentDirectory();
}

// Phone-camera uploads: dataset photos scaled up and re-encoded, so decoding needs multi-megabyte buffers.
static List<byte[]> CameraSized(IEnumerable<string> paths, int width, int height) => paths.Select(path =>
{
    using var image = Image.Load<Rgb24>(path);
    image.Mutate(x => x.Resize(width, height));
    using var output = new MemoryStream();
    image.SaveAsJpeg(output);
    return output.ToArray();
}).ToList();
