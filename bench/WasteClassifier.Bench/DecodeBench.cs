using System.Diagnostics;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.Bench;

/// <summary>
/// Decode + resize + tensor write (ImageTensorWriter.Write, exactly the worker's call) on one thread and on all cores.
/// <c>scaledDecode: false</c> measures the full decode of large JPEGs, for the ratio that scaled decoding gains.
/// </summary>
public static class DecodeBench
{
    public sealed record Result(string Images, int Threads, double ImagesPerS, double MsPerImage);

    public static IEnumerable<Result> Run(string name, IReadOnlyList<byte[]> images, ModelInputSpec input, TimeSpan duration, bool scaledDecode = true)
    {
        foreach (var threads in new[] { 1, Environment.ProcessorCount }.Distinct())
        {
            var length = ImageTensorWriter.TensorLength(input);
            var done = 0;
            var watch = Stopwatch.StartNew();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            {
                var tensor = new float[length];
                for (var k = t; watch.Elapsed < duration; k += threads)
                {
                    ImageTensorWriter.Write(images[k % images.Count], input, tensor, ImageLimits.Default, scaledDecode: scaledDecode);
                    Interlocked.Increment(ref done);
                }
            });
            var seconds = watch.Elapsed.TotalSeconds;
            yield return new Result(name, threads, done / seconds, seconds * 1000 * threads / done);
        }
    }
}
