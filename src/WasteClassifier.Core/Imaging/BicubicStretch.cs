using System.Buffers;
using System.Collections.Concurrent;
using System.Numerics;
using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.Core.Imaging;

/// <summary>
/// ImageSharp 2.1's default resize (bicubic, a = −0.5, stretched to the target size), computed the same way but without its
/// per-pixel RGBA vectors and image cloning: about a third of the CPU for a dataset photo, and the worker's largest cost after
/// the model. The kernels are ImageSharp's (support, clamping at the edges, normalisation), so the pixels the models were
/// trained on do not change: only float rounding differs, which moves a few channel values by one level (tests compare the
/// two).
/// </summary>
public static class BicubicStretch
{
    /// <summary>
    /// Larger sources take ImageSharp's resize: this one holds source width × target height pixels as floats (12 bytes
    /// each). Camera frames arrive here already decoded at a reduced scale.
    /// </summary>
    public const int MaxSourcePixels = 1 << 20;

    private const double Radius = 2; // ImageSharp's BicubicResampler.Radius
    private const double Epsilon = 1e-8; // ImageSharp's TolerantMath.Default

    /// <summary>Whether <see cref="Resize"/> takes an image of this size.</summary>
    public static bool Supports(int width, int height) => width > 0 && height > 0 && (long)width * height <= MaxSourcePixels;

    /// <summary>A new image of <paramref name="width"/> × <paramref name="height"/>; null when <see cref="Supports"/> says no.</summary>
    public static Image<Rgb24>? Resize(Image<Rgb24> source, int width, int height)
    {
        if (!Supports(source.Width, source.Height) || !source.DangerousTryGetSinglePixelMemory(out var sourceMemory)) return null;
        var target = new Image<Rgb24>(width, height);
        if (!target.DangerousTryGetSinglePixelMemory(out var targetMemory))
        {
            target.Dispose();
            return null;
        }
        var rounded = ArrayPool<byte>.Shared.Rent(3 * height);
        try
        {
            var sink = new ImageColumns(MemoryMarshal.Cast<Rgb24, byte>(targetMemory.Span), width, rounded);
            Resize(MemoryMarshal.AsBytes(sourceMemory.Span), source.Width, source.Height, width, height, ref sink);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rounded);
        }
        return target;
    }

    /// <summary>
    /// Resizes to <paramref name="input"/>'s size and writes the model's input values straight into
    /// <paramref name="tensor"/>: the same values as <see cref="Resize(Image{Rgb24}, int, int)"/> followed by
    /// <see cref="ImageTensorWriter.CopyPixels"/>, without the resized image in between. False when <see cref="Supports"/> says no.
    /// </summary>
    public static bool ResizeInto(Image<Rgb24> source, ModelInputSpec input, Span<float> tensor)
    {
        if (!Supports(source.Width, source.Height) || !source.DangerousTryGetSinglePixelMemory(out var sourceMemory)) return false;
        if (tensor.Length < ImageTensorWriter.TensorLength(input)) throw new ArgumentException("destination is smaller than one image tensor");
        var sink = new TensorColumns(tensor, new PixelNormalization(input));
        Resize(MemoryMarshal.AsBytes(sourceMemory.Span), source.Width, source.Height, input.Width, input.Height, ref sink);
        return true;
    }

    /// <summary>Receives the target's columns, top to bottom, as interleaved RGB floats not yet rounded.</summary>
    private interface IColumnSink
    {
        void Write(int x, Span<float> column);
    }

    /// <summary>Rounds each column into an interleaved RGB image.</summary>
    private readonly ref struct ImageColumns(Span<byte> target, int width, byte[] rounded) : IColumnSink
    {
        private readonly Span<byte> _target = target;

        public void Write(int x, Span<float> column)
        {
            ToBytes(column, rounded);
            var pixels = MemoryMarshal.Cast<byte, Rgb24>(rounded.AsSpan(0, column.Length));
            var output = MemoryMarshal.Cast<byte, Rgb24>(_target);
            for (var y = 0; y < pixels.Length; y++) output[y * width + x] = pixels[y];
        }
    }

    /// <summary>Rounds each column as the image would hold it, then writes the model's values for its pixels.</summary>
    private readonly ref struct TensorColumns(Span<float> tensor, PixelNormalization normalization) : IColumnSink
    {
        private readonly Span<float> _tensor = tensor;

        public void Write(int x, Span<float> column)
        {
            RoundInPlace(column);
            for (int y = 0, at = 0; at < column.Length; y++, at += 3)
                normalization.Write(_tensor, x, y, column[at], column[at + 1], column[at + 2]);
        }
    }

    /// <summary>
    /// Resizes interleaved RGB bytes. Separable, as ImageSharp's: rows first here, each a weighted sum of source rows, then
    /// columns, each a weighted sum of rows of the transposed intermediate, so both passes run over contiguous memory in SIMD
    /// vectors. Only the intermediate (source width × target height pixels) is held, as floats.
    /// </summary>
    private static void Resize<TSink>(ReadOnlySpan<byte> source, int sourceWidth, int sourceHeight, int width, int height, ref TSink sink)
        where TSink : IColumnSink, allows ref struct
    {
        var rows = Kernels.For(sourceHeight, height);
        var columns = Kernels.For(sourceWidth, width);
        int sourceRow = sourceWidth * 3, targetColumn = height * 3;
        var floats = ArrayPool<float>.Shared;
        float[] transposed = floats.Rent(sourceWidth * targetColumn), line = floats.Rent(Math.Max(sourceRow, targetColumn));
        try
        {
            // Pass 1: target row y, stored as column y of the intermediate ([source column][target row]).
            var intermediate = MemoryMarshal.Cast<float, Vector3>(transposed.AsSpan(0, sourceWidth * targetColumn));
            for (var y = 0; y < height; y++)
            {
                WeightedSum(source, sourceRow, rows.First[y], rows.Weights(y), line);
                var pixels = MemoryMarshal.Cast<float, Vector3>(line.AsSpan(0, sourceRow));
                for (var x = 0; x < sourceWidth; x++) intermediate[x * height + y] = pixels[x];
            }
            // Pass 2: target column x.
            for (var x = 0; x < width; x++)
            {
                WeightedSum(transposed, targetColumn, columns.First[x], columns.Weights(x), line);
                sink.Write(x, line.AsSpan(0, targetColumn));
            }
        }
        finally
        {
            floats.Return(transposed);
            floats.Return(line);
        }
    }

    /// <summary>sum = Σ weights[k] × row (first + k) of <paramref name="input"/>'s bytes, for rows of <paramref name="rowLength"/>.</summary>
    private static void WeightedSum(ReadOnlySpan<byte> input, int rowLength, int first, ReadOnlySpan<float> weights, Span<float> sum)
    {
        var j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int bytes = Vector<byte>.Count, count = Vector<float>.Count;
            // One byte vector widens into four float vectors: four independent sums keep the multiply-add units busy.
            for (; j <= rowLength - bytes; j += bytes)
            {
                Vector<float> s0 = Vector<float>.Zero, s1 = Vector<float>.Zero, s2 = Vector<float>.Zero, s3 = Vector<float>.Zero;
                for (int k = 0, at = first * rowLength + j; k < weights.Length; k++, at += rowLength)
                {
                    var weight = new Vector<float>(weights[k]);
                    Vector.Widen(new Vector<byte>(input.Slice(at, bytes)), out var low, out var high);
                    Vector.Widen(low, out var a, out var b);
                    Vector.Widen(high, out var c, out var d);
                    s0 = Vector.FusedMultiplyAdd(Vector.ConvertToSingle(a), weight, s0);
                    s1 = Vector.FusedMultiplyAdd(Vector.ConvertToSingle(b), weight, s1);
                    s2 = Vector.FusedMultiplyAdd(Vector.ConvertToSingle(c), weight, s2);
                    s3 = Vector.FusedMultiplyAdd(Vector.ConvertToSingle(d), weight, s3);
                }
                s0.CopyTo(sum[j..]);
                s1.CopyTo(sum[(j + count)..]);
                s2.CopyTo(sum[(j + 2 * count)..]);
                s3.CopyTo(sum[(j + 3 * count)..]);
            }
        }
        for (; j < rowLength; j++)
        {
            var total = 0f;
            for (var k = 0; k < weights.Length; k++) total += input[(first + k) * rowLength + j] * weights[k];
            sum[j] = total;
        }
    }

    /// <summary>sum = Σ weights[k] × row (first + k) of <paramref name="input"/>, for rows of <paramref name="rowLength"/> floats.</summary>
    private static void WeightedSum(float[] input, int rowLength, int first, ReadOnlySpan<float> weights, Span<float> sum)
    {
        var j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var count = Vector<float>.Count;
            // Two vectors at a time: two independent sums keep the multiply-add units busy (measured: −20 % time).
            for (; j <= rowLength - 2 * count; j += 2 * count)
            {
                Vector<float> s0 = Vector<float>.Zero, s1 = Vector<float>.Zero;
                for (int k = 0, at = first * rowLength + j; k < weights.Length; k++, at += rowLength)
                {
                    var weight = new Vector<float>(weights[k]);
                    s0 = Vector.FusedMultiplyAdd(new Vector<float>(input, at), weight, s0);
                    s1 = Vector.FusedMultiplyAdd(new Vector<float>(input, at + count), weight, s1);
                }
                s0.CopyTo(sum[j..]);
                s1.CopyTo(sum[(j + count)..]);
            }
        }
        for (; j < rowLength; j++)
        {
            var total = 0f;
            for (var k = 0; k < weights.Length; k++) total += input[(first + k) * rowLength + j] * weights[k];
            sum[j] = total;
        }
    }

    /// <summary>Rounds and clamps as ImageSharp's <c>Rgb24.FromVector4</c> does: (byte)clamp(value + 0.5, 0, 255).</summary>
    private static void ToBytes(ReadOnlySpan<float> floats, Span<byte> bytes)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var (half, zero, max) = (new Vector<float>(0.5f), Vector<float>.Zero, new Vector<float>(255f));
            var floatVectors = MemoryMarshal.Cast<float, Vector<float>>(floats);
            var byteVectors = MemoryMarshal.Cast<byte, Vector<byte>>(bytes);
            Vector<uint> Round(Vector<float> value) => Vector.ConvertToUInt32(Vector.Min(Vector.Max(value + half, zero), max));
            // Four float vectors narrow into one byte vector.
            for (var v = 0; v + 3 < floatVectors.Length && v / 4 < byteVectors.Length; v += 4)
            {
                byteVectors[v / 4] = Vector.Narrow(Vector.Narrow(Round(floatVectors[v]), Round(floatVectors[v + 1])),
                    Vector.Narrow(Round(floatVectors[v + 2]), Round(floatVectors[v + 3])));
                i = (v + 4) * Vector<float>.Count;
            }
        }
        for (; i < floats.Length; i++) bytes[i] = (byte)Math.Clamp(floats[i] + 0.5f, 0f, 255f);
    }

    /// <summary>The whole numbers <see cref="ToBytes"/> would give, kept as floats.</summary>
    private static void RoundInPlace(Span<float> values)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var (half, zero, max) = (new Vector<float>(0.5f), Vector<float>.Zero, new Vector<float>(255f));
            var vectors = MemoryMarshal.Cast<float, Vector<float>>(values);
            for (var v = 0; v < vectors.Length; v++) vectors[v] = Vector.Floor(Vector.Min(Vector.Max(vectors[v] + half, zero), max));
            i = vectors.Length * Vector<float>.Count;
        }
        for (; i < values.Length; i++) values[i] = (byte)Math.Clamp(values[i] + 0.5f, 0f, 255f);
    }

    /// <summary>ImageSharp's <c>ResizeKernelMap</c> for one axis: for each target index, the first source index and the weights.</summary>
    private sealed class Kernels
    {
        private readonly float[] _weights;
        private readonly int[] _lengths;
        private readonly int _diameter;

        private Kernels(int count, int diameter)
        {
            Count = count;
            _diameter = diameter;
            First = new int[count];
            _lengths = new int[count];
            _weights = new float[count * diameter];
        }

        public int Count { get; }

        public int[] First { get; }

        public ReadOnlySpan<float> Weights(int index) => _weights.AsSpan(index * _diameter, _lengths[index]);

        // Photos come in a few sizes (a camera's frames, a dataset's), and a map cost a tenth of the resize in a profile of the
        // worker: kept once computed, for up to CacheLimit pairs of lengths. Only maps of up to CachedWeightsLimit weights
        // are kept (a dataset photo's take 2,016): an upload's extreme aspect ratio (16,384 × 64 pixels needs 66,080) must
        // not make the worker hold megabytes for good. At most 4 MB in all.
        private const int CacheLimit = 64;
        private const int CachedWeightsLimit = 16 * 1024;
        private static readonly ConcurrentDictionary<(int Source, int Target), Kernels> Cache = new();

        public static Kernels For(int sourceLength, int targetLength)
        {
            if (Cache.TryGetValue((sourceLength, targetLength), out var cached)) return cached;
            var kernels = Compute(sourceLength, targetLength);
            if (kernels._weights.Length <= CachedWeightsLimit && Cache.Count < CacheLimit) Cache.TryAdd((sourceLength, targetLength), kernels);
            return kernels;
        }

        private static Kernels Compute(int sourceLength, int targetLength)
        {
            var ratio = (double)sourceLength / targetLength;
            var scale = Math.Max(1, ratio);
            var radius = (int)TolerantCeiling(scale * Radius);
            var kernels = new Kernels(targetLength, 2 * radius + 1);
            Span<double> values = stackalloc double[kernels._diameter];
            for (var i = 0; i < targetLength; i++)
            {
                var center = (i + .5) * ratio - .5;
                var left = Math.Max(0, (int)TolerantCeiling(center - radius));
                var right = Math.Min(sourceLength - 1, (int)TolerantFloor(center + radius));
                var length = right - left + 1;
                double sum = 0;
                for (var j = left; j <= right; j++)
                {
                    double value = Bicubic((float)((j - center) / scale));
                    values[j - left] = value;
                    sum += value;
                }
                kernels.First[i] = left;
                kernels._lengths[i] = length;
                for (var j = 0; j < length; j++)
                    kernels._weights[i * kernels._diameter + j] = (float)(sum > 0 ? values[j] / sum : values[j]);
            }
            return kernels;
        }

        // ImageSharp's BicubicResampler.GetValue, in single precision as there.
        private static float Bicubic(float x)
        {
            if (x < 0f) x = -x;
            if (x <= 1f) return (((1.5f * x) - 2.5f) * x * x) + 1;
            if (x < 2f) return (((((-0.5f * x) + 2.5f) * x) - 4) * x) + 2;
            return 0;
        }

        // ImageSharp's TolerantMath: a value within 1e-8 of a whole number is that number.
        private static double TolerantCeiling(double a) => Math.Abs(Math.IEEERemainder(a, 1)) < Epsilon ? Math.Round(a) : Math.Ceiling(a);

        private static double TolerantFloor(double a) => Math.Abs(Math.IEEERemainder(a, 1)) < Epsilon ? Math.Round(a) : Math.Floor(a);
    }
}
