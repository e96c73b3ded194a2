using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace WasteClassifier.Core.Inference;

/// <summary>Runs a single-input, single-output session on a batch and splits the output into rows.</summary>
internal sealed class BatchRunner(InferenceSession session, string inputName, string outputName, InferenceOptions options) : IDisposable
{
    // InferenceSession.Run is thread-safe; callers beyond the configured number of concurrent Runs wait, so the
    // intra-op threads of all Runs together never oversubscribe the cores.
    private readonly SemaphoreSlim gate = new(Math.Max(1, options.ConcurrentRuns));

    public string InputName => inputName;

    public float[][] Run(ReadOnlyMemory<float> batch, long[] shape)
    {
        var count = (int)shape[0];
        var expected = shape.Aggregate(1L, (a, b) => a * b);
        if (count <= 0) return [];
        if (batch.Length < expected) throw new ArgumentException($"the batch holds {batch.Length} floats; {expected} are needed for shape [{string.Join(",", shape)}]");

        var perImage = (int)(expected / count);
        var chunk = options.MaxImagesPerRun > 0 ? Math.Min(options.MaxImagesPerRun, count) : count;
        var rows = new float[count][];
        gate.Wait();
        try
        {
            // A Run's activations grow with its images, so a big batch goes through as several Runs of at most MaxImagesPerRun.
            for (var start = 0; start < count; start += chunk)
            {
                var size = Math.Min(chunk, count - start);
                long[] chunkShape = [size, .. shape[1..]];
                RunChunk(batch.Slice(start * perImage, size * perImage), chunkShape, rows.AsSpan(start, size));
            }
            return rows;
        }
        finally
        {
            gate.Release();
        }
    }

    private void RunChunk(ReadOnlyMemory<float> batch, long[] shape, Span<float[]> rows)
    {
        // ORT only reads the input; the cast avoids copying the batch.
        using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, MemoryMarshal.AsMemory(batch), shape);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, [inputName], [input], [outputName]);
        var values = outputs[0].GetTensorDataAsSpan<float>();
        if (values.Length % rows.Length != 0) throw new InvalidDataException($"output '{outputName}' has {values.Length} values for {rows.Length} images");
        var width = values.Length / rows.Length;
        for (var i = 0; i < rows.Length; i++) rows[i] = values.Slice(i * width, width).ToArray();
    }

    public void Dispose()
    {
        session.Dispose();
        gate.Dispose();
    }
}
