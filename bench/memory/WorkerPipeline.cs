using System.Buffers;
using System.Diagnostics;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.MemoryBench;

/// <summary>What ClassificationBatchProcessor does per batch, minus the database: fetch, decode in parallel, one model call in turn.</summary>
internal sealed class WorkerPipeline(OnnxImageClassifier classifier, int decodeParallelism, ArrayPool<float> tensorPool)
{
    private readonly SemaphoreSlim modelTurn = new(1, 1);

    public sealed record Result(int Images, double ImagesPerInferenceSecond, double ImagesPerWallSecond);

    /// <param name="fetch">Returns a fresh byte[] per call, as the object store does.</param>
    public async Task<Result> RunAsync(int[] sizes, int depth, Func<Task<byte[]>> fetch)
    {
        var next = -1;
        long images = 0, inferenceTicks = 0;
        var wall = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, depth).Select(_ => Task.Run(async () =>
        {
            int index;
            while ((index = Interlocked.Increment(ref next)) < sizes.Length)
            {
                var ticks = await ProcessBatchAsync(sizes[index], fetch);
                Interlocked.Add(ref inferenceTicks, ticks);
                Interlocked.Add(ref images, sizes[index]);
            }
        })));
        var inferenceSeconds = TimeSpan.FromTicks(inferenceTicks).TotalSeconds;
        return new Result((int)images, images / inferenceSeconds, images / wall.Elapsed.TotalSeconds);
    }

    private async Task<long> ProcessBatchAsync(int count, Func<Task<byte[]>> fetch)
    {
        var images = await Task.WhenAll(Enumerable.Range(0, count).Select(_ => fetch()));
        var input = classifier.Card.Input;
        var length = ImageTensorWriter.TensorLength(input);
        // As the worker does: the full batch's length from its pool; the shared pool gets each batch's own size (as before).
        var tensor = tensorPool.Rent((tensorPool is BatchTensorPool ? 16 : count) * length);
        long inferenceTicks;
        try
        {
            var checks = new ImageCheck[count];
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = decodeParallelism },
                i => checks[i] = ImageTensorWriter.Write(images[i], input, tensor.AsSpan(i * length, length), ImageLimits.Default));
            if (checks.Any(c => !c.Ok)) throw new InvalidDataException("a dataset image failed to decode");

            await modelTurn.WaitAsync();
            try
            {
                var watch = Stopwatch.StartNew();
                var rows = classifier.Classify(tensor.AsMemory(0, count * length), count);
                if (rows.Length != count) throw new InvalidDataException("wrong row count");
                inferenceTicks = watch.Elapsed.Ticks;
            }
            finally
            {
                modelTurn.Release();
            }
            // Stands for SaveChangesAsync: the worker returns the tensor on whichever thread the save resumes on.
            await Task.Delay(2);
            return inferenceTicks;
        }
        finally
        {
            tensorPool.Return(tensor);
        }
    }

    /// <summary>Decode + resize only, on <c>decodeParallelism</c> threads: images per second and CPU milliseconds per image.</summary>
    public (double ImagesPerSecond, double CpuMsPerImage) DecodeOnly(int count, Func<byte[]> image)
    {
        var input = classifier.Card.Input;
        var length = ImageTensorWriter.TensorLength(input);
        var cpu = CpuTime();
        var watch = Stopwatch.StartNew();
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = decodeParallelism }, () => new float[length], (_, _, tensor) =>
        {
            if (!ImageTensorWriter.Write(image(), input, tensor, ImageLimits.Default).Ok) throw new InvalidDataException("a camera image failed to decode");
            return tensor;
        }, _ => { });
        var cpuMs = (CpuTime() - cpu).TotalMilliseconds;
        return (count / watch.Elapsed.TotalSeconds, cpuMs / count);
    }

    /// <summary>Images per second of wall time, and CPU milliseconds (all threads) per image: the latter moves less when others share the cores.</summary>
    public (double ImagesPerSecond, double CpuMsPerImage) ModelOnly(int count, int runs, Func<byte[]> image)
    {
        var input = classifier.Card.Input;
        var length = ImageTensorWriter.TensorLength(input);
        var tensor = new float[count * length];
        for (var i = 0; i < count; i++)
            ImageTensorWriter.Write(image(), input, tensor.AsSpan(i * length, length), ImageLimits.Default);
        classifier.Classify(tensor, count);
        var cpu = CpuTime();
        var watch = Stopwatch.StartNew();
        for (var r = 0; r < runs; r++) classifier.Classify(tensor, count);
        var cpuMs = (CpuTime() - cpu).TotalMilliseconds;
        return (runs * count / watch.Elapsed.TotalSeconds, cpuMs / (runs * count));
    }

    private static TimeSpan CpuTime()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime;
    }
}
