using System.Buffers;
using System.Collections.Concurrent;

namespace WasteClassifier.MemoryBench;

/// <summary>
/// What ClassificationBatchProcessor could use instead of ArrayPool&lt;float&gt;.Shared: one full-batch tensor per batch in
/// flight, reused whatever the batch size. The shared pool rounds up to a power of two (16 images: 16 MB), keeps one array
/// per size per thread that returned one, and batches are returned on whichever thread their save resumes on.
/// </summary>
internal sealed class FullBatchTensorPool(int fullBatchLength) : ArrayPool<float>
{
    private readonly ConcurrentBag<float[]> idle = [];

    public override float[] Rent(int minimumLength)
    {
        if (minimumLength > fullBatchLength) throw new ArgumentOutOfRangeException(nameof(minimumLength));
        return idle.TryTake(out var tensor) ? tensor : GC.AllocateUninitializedArray<float>(fullBatchLength);
    }

    public override void Return(float[] array, bool clearArray = false) => idle.Add(array);
}
