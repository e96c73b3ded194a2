using System.Numerics;
using System.Runtime.InteropServices;

namespace WasteClassifier.Core.Training;

/// <summary>SIMD dot product and axpy: the two kernels a small dense network needs.</summary>
internal static class VectorMath
{
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var sum = Vector<float>.Zero;
        var va = MemoryMarshal.Cast<float, Vector<float>>(a);
        var vb = MemoryMarshal.Cast<float, Vector<float>>(b[..a.Length]);
        for (var i = 0; i < va.Length; i++) sum += va[i] * vb[i];
        var result = Vector.Sum(sum);
        for (var i = va.Length * Vector<float>.Count; i < a.Length; i++) result += a[i] * b[i];
        return result;
    }

    /// <summary>y += alpha · x.</summary>
    public static void AddScaled(Span<float> y, float alpha, ReadOnlySpan<float> x)
    {
        var vy = MemoryMarshal.Cast<float, Vector<float>>(y);
        var vx = MemoryMarshal.Cast<float, Vector<float>>(x[..y.Length]);
        var va = new Vector<float>(alpha);
        for (var i = 0; i < vy.Length; i++) vy[i] += va * vx[i];
        for (var i = vy.Length * Vector<float>.Count; i < y.Length; i++) y[i] += alpha * x[i];
    }
}
