using System.Diagnostics;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.Bench;

/// <summary>The ceiling: the active model on already-preprocessed tensors, one Run per batch, as the worker calls it.</summary>
public static class ModelBench
{
    public sealed record Result(int BatchSize, double ImagesPerS, double MsPerBatch);

    public static IReadOnlyList<Result> Run(string modelDirectory, int threads, IReadOnlyList<byte[]> images, TimeSpan perSize, int[] batchSizes)
    {
        using var classifier = ModelLoader.Load(modelDirectory, new InferenceOptions { IntraOpThreads = threads });
        var input = classifier.Card.Input;
        var length = ImageTensorWriter.TensorLength(input);
        var max = batchSizes.Max();
        var tensor = new float[max * length];
        for (var i = 0; i < max; i++)
            ImageTensorWriter.Write(images[i % images.Count], input, tensor.AsSpan(i * length, length), ImageLimits.Default);

        var results = new List<Result>();
        foreach (var size in batchSizes)
        {
            var batch = tensor.AsMemory(0, size * length);
            classifier.Classify(batch, size); // warm-up: first Run of a shape allocates
            var watch = Stopwatch.StartNew();
            var runs = 0;
            while (watch.Elapsed < perSize || runs < 3)
            {
                classifier.Classify(batch, size);
                runs++;
            }
            var seconds = watch.Elapsed.TotalSeconds;
            results.Add(new Result(size, runs * size / seconds, seconds * 1000 / runs));
        }
        return results;
    }
}
