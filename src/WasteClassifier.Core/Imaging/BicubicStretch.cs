using System.Buffers;
using System.Numerics;
using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

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
    /// Larger sources take ImageSharp's resize: this one holds the whole image as floats (12 bytes a pixel). Camera frames
    /// arrive here already decoded at a reduced scale.
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
        Resize(MemoryMarshal.AsBytes(sourceMemory.Span), source.Width, source.Height, MemoryMarshal.AsBytes(targetMemory.Span), width, height);
        return target;
    }

    /// <summary>
    /// Resizes interleaved RGB bytes. Separable, as ImageSharp's: rows first here, as a sum of weighted source rows, then
    /// columns, as a sum of weighted rows of the transposed result, so both passes run over contiguous memory in SIMD vectors.
    /// </summary>
    private static void Resize(ReadOnlySpan<byte> source, int sourceWidth, int sourceHeight, Span<byte> target, int width, int height)
    {
        var rows = Kernels.For(sourceHeight, height);
        var columns = Kernels.For(sourceWidth, width);
        int sourceRow = sourceWidth * 3, targetColumn = height * 3;
        var pool = ArrayPool<float>.Shared;
        float[] input = pool.Rent(sourceHeight * sourceRow), resizedRows = pool.Rent(height * sourceRow),
            transposed = pool.Rent(sourceWidth * targetColumn), output = pool.Rent(width * targetColumn);
        var rounded = ArrayPool<byte>.Shared.Rent(width * targetColumn);
        try
        {
            ToFloats(source, input.AsSpan(0, sourceHeight * sourceRow));
            CombineRows(input, sourceRow, rows, resizedRows);
            // [target row][source column] → [source column][target row], a pixel (3 floats) at a time.
            Transpose(MemoryMarshal.Cast<float, Vector3>(resizedRows.AsSpan(0, height * sourceRow)), height, sourceWidth, MemoryMarshal.Cast<float, Vector3>(transposed.AsSpan()));
            CombineRows(transposed, targetColumn, columns, output);
            ToBytes(output.AsSpan(0, width * targetColumn), rounded);
            // [target column][target row] → [target row][target column]
            Transpose(MemoryMarshal.Cast<byte, Rgb24>(rounded.AsSpan(0, width * targetColumn)), width, height, MemoryMarshal.Cast<byte, Rgb24>(target));
        }
        finally
        {
            pool.Return(input);
            pool.Return(resizedRows);
            pool.Return(transposed);
            pool.Return(output);
            ArrayPool<byte>.Shared.Return(rounded);
        }
    }

    /// <summary>[rows][columns] → [columns][rows], in tiles that stay in the cache.</summary>
    private static void Transpose<T>(ReadOnlySpan<T> input, int rows, int columns, Span<T> output)
    {
        const int Tile = 16;
        for (var r0 = 0; r0 < rows; r0 += Tile)
        {
            var r1 = Math.Min(rows, r0 + Tile);
            for (var c0 = 0; c0 < columns; c0 += Tile)
            {
                var c1 = Math.Min(columns, c0 + Tile);
                for (var r = r0; r < r1; r++)
                {
                    var from = input.Slice(r * columns, columns);
                    for (var c = c0; c < c1; c++) output[c * rows + r] = from[c];
                }
            }
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

    private static void ToFloats(ReadOnlySpan<byte> bytes, Span<float> floats)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var bytesVectors = MemoryMarshal.Cast<byte, Vector<byte>>(bytes);
            var floatsVectors = MemoryMarshal.Cast<float, Vector<float>>(floats);
            for (var v = 0; v < bytesVectors.Length; v++)
            {
                Vector.Widen(bytesVectors[v], out var low, out var high);
                Vector.Widen(low, out var a, out var b);
                Vector.Widen(high, out var c, out var d);
                floatsVectors[4 * v] = Vector.ConvertToSingle(a);
                floatsVectors[4 * v + 1] = Vector.ConvertToSingle(b);
                floatsVectors[4 * v + 2] = Vector.ConvertToSingle(c);
                floatsVectors[4 * v + 3] = Vector.ConvertToSingle(d);
            }
            i = bytesVectors.Length * Vector<byte>.Count;
        }
        for (; i < bytes.Length; i++) floats[i] = bytes[i];
    }

    /// <summary>Output row i = Σ weights[i][k] × input row (first[i] + k), for rows of <paramref name="rowLength"/> floats.</summary>
    private static void CombineRows(float[] input, int rowLength, Kernels kernels, float[] output)
    {
        var width = Vector<float>.Count;
        for (var i = 0; i < kernels.Count; i++)
        {
            var weights = kernels.Weights(i);
            var first = kernels.First[i] * rowLength;
            var row = output.AsSpan(i * rowLength, rowLength);
            var j = 0;
            if (Vector.IsHardwareAccelerated)
            {
                // Two vectors at a time: two independent sums keep the multiply-add units busy (measured: −20 % time).
                for (; j <= rowLength - 2 * width; j += 2 * width)
                {
                    Vector<float> sum = Vector<float>.Zero, next = Vector<float>.Zero;
                    for (int k = 0, at = first + j; k < weights.Length; k++, at += rowLength)
                    {
                        var weight = new Vector<float>(weights[k]);
                        sum = Vector.FusedMultiplyAdd(new Vector<float>(input, at), weight, sum);
                        next = Vector.FusedMultiplyAdd(new Vector<float>(input, at + width), weight, next);
                    }
                    sum.CopyTo(row[j..]);
                    next.CopyTo(row[(j + width)..]);
                }
                for (; j <= rowLength - width; j += width)
                {
                    var sum = Vector<float>.Zero;
                    for (var k = 0; k < weights.Length; k++)
                        sum += new Vector<float>(input, first + k * rowLength + j) * weights[k];
                    sum.CopyTo(row[j..]);
                }
            }
            for (; j < rowLength; j++)
            {
                var sum = 0f;
                for (var k = 0; k < weights.Length; k++) sum += input[first + k * rowLength + j] * weights[k];
                row[j] = sum;
            }
        }
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

        public static Kernels For(int sourceLength, int targetLength)
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
