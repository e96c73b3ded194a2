using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace WasteClassifier.Core.Inference;

/// <summary>Runs a single-input, single-output session on a batch and splits the output into rows.</summary>
internal sealed class BatchRunner(InferenceSession session, string inputName, string outputName) : IDisposable
{
    // InferenceSession.Run is thread-safe, but one batch already uses every intra-op thread;
    // serialising callers keeps latency predictable instead of oversubscribing the cores.
    private readonly Lock gate = new();

    public string InputName => inputName;

    public float[][] Run(ReadOnlyMemory<float> batch, long[] shape)
    {
        var count = (int)shape[0];
        var expected = shape.Aggregate(1L, (a, b) => a * b);
        if (count <= 0) return [];
        if (batch.Length < expected) throw new ArgumentException($"the batch holds {batch.Length} floats; {expected} are needed for shape [{string.Join(",", shape)}]");

        // ORT only reads the input; the cast avoids copying the batch.
        var memory = MemoryMarshal.AsMemory(batch[..(int)expected]);
        lock (gate)
        {
            using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, memory, shape);
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, [inputName], [input], [outputName]);
            var values = outputs[0].GetTensorDataAsSpan<float>();
            if (values.Length % count != 0) throw new InvalidDataException($"output '{outputName}' has {values.Length} values for {count} images");
            var width = values.Length / count;
            var rows = new float[count][];
            for (var i = 0; i < count; i++) rows[i] = values.Slice(i * width, width).ToArray();
            return rows;
        }
    }

    public void Dispose() => session.Dispose();
}
