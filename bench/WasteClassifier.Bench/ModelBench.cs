using System.Diagnostics;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.Bench;

/// <summary>
/// The ceiling: the active model on already-preprocessed tensors, with <c>runs</c> Runs in flight at once on one session
/// (each with <c>threads</c> intra-op threads), as a worker with that many lanes calls it.
/// </summary>
public static class ModelBench
{
    /// <param name="SpinIdleThreads">Idle intra-op threads spin (ONNX Runtime's default) instead of sleeping (the worker's setting).</param>
    public sealed record Setting(int Runs, int Threads, int MaxImagesPerRun = 0, bool SpinIdleThreads = false)
    {
        public override string ToString() => $"{Runs} Run{(Runs == 1 ? "" : "s")} × {Threads} thread{(Threads == 1 ? "" : "s")}" +
                                             (MaxImagesPerRun > 0 ? $", ≤ {MaxImagesPerRun} images per Run" : "") +
                                             (SpinIdleThreads ? ", idle threads spinning" : "");
    }

    /// <param name="MsPerBatch">Wall time of one Run.</param>
    /// <param name="CpuMsPerImage">The process's CPU time per image, all threads: what the model costs a machine whose cores are shared.</param>
    public sealed record Result(Setting Setting, int BatchSize, double ImagesPerS, double MsPerBatch, double CpuMsPerImage);

    public static IReadOnlyList<Result> Run(string modelDirectory, Setting setting, IReadOnlyList<byte[]> images, TimeSpan perSize, int[] batchSizes)
    {
        using var classifier = ModelLoader.Load(modelDirectory, new InferenceOptions
        {
            IntraOpThreads = setting.Threads,
            ConcurrentRuns = setting.Runs,
            MaxImagesPerRun = setting.MaxImagesPerRun,
            SpinIdleThreads = setting.SpinIdleThreads,
        });
        var input = classifier.Card.Input;
        var length = ImageTensorWriter.TensorLength(input);
        var max = batchSizes.Max();
        var tensor = new float[max * length];
        for (var i = 0; i < max; i++)
            ImageTensorWriter.Write(images[i % images.Count], input, tensor.AsSpan(i * length, length), ImageLimits.Default);

        var results = new List<Result>();
        foreach (var size in batchSizes)
        {
            // ORT only reads the input, so the concurrent Runs share one tensor.
            var batch = tensor.AsMemory(0, size * length);
            // Warm-up, one second per size: the first Runs of a shape allocate, and right after the model is loaded the first
            // size measured ran 25-30 % slower than the same size measured again later in the run.
            var warmup = Stopwatch.StartNew();
            for (var i = 0; i < 3 || warmup.Elapsed < TimeSpan.FromSeconds(1); i++) classifier.Classify(batch, size);
            var process = Process.GetCurrentProcess();
            var cpuBefore = process.TotalProcessorTime;
            var watch = Stopwatch.StartNew();
            var runs = 0;
            var loops = Enumerable.Range(0, setting.Runs).Select(_ => Task.Factory.StartNew(() =>
            {
                while (watch.Elapsed < perSize || Volatile.Read(ref runs) < 3 * setting.Runs)
                {
                    classifier.Classify(batch, size);
                    Interlocked.Increment(ref runs);
                }
            }, TaskCreationOptions.LongRunning)).ToArray();
            Task.WaitAll(loops);
            var seconds = watch.Elapsed.TotalSeconds;
            process.Refresh();
            var cpuMs = (process.TotalProcessorTime - cpuBefore).TotalMilliseconds;
            results.Add(new Result(setting, size, runs * size / seconds, seconds * 1000 * setting.Runs / runs, cpuMs / (runs * size)));
        }
        return results;
    }
}
