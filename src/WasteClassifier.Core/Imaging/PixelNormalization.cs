using System.Runtime.CompilerServices;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.Core.Imaging;

/// <summary>
/// How one RGB pixel becomes a model's input values, as its card says: value = (pixel × scale − mean[c]) / std[c], in the
/// card's layout (channel planes or interleaved) and channel order.
/// </summary>
internal readonly struct PixelNormalization
{
    // Per output channel: which RGB component feeds it, and the affine transform to apply.
    private readonly int _source0, _source1, _source2;
    private readonly float _multiply0, _multiply1, _multiply2, _add0, _add1, _add2;
    private readonly bool _planes;
    private readonly int _width, _plane;

    public PixelNormalization(ModelInputSpec input)
    {
        var bgr = input.ChannelOrder == ChannelOrder.Bgr;
        (_source0, _source1, _source2) = bgr ? (2, 1, 0) : (0, 1, 2);
        (_multiply0, _add0) = Affine(input, 0);
        (_multiply1, _add1) = Affine(input, 1);
        (_multiply2, _add2) = Affine(input, 2);
        _planes = input.Layout == TensorLayout.Nchw;
        _width = input.Width;
        _plane = input.Width * input.Height;
    }

    private static (float Multiply, float Add) Affine(ModelInputSpec input, int channel) =>
        (input.Scale / input.Std[channel], -input.Mean[channel] / input.Std[channel]);

    /// <summary>Writes pixel (<paramref name="x"/>, <paramref name="y"/>) of components 0–255 into one image's tensor.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write(Span<float> tensor, int x, int y, float red, float green, float blue)
    {
        float c0 = Component(_source0, red, green, blue), c1 = Component(_source1, red, green, blue), c2 = Component(_source2, red, green, blue);
        var i = y * _width + x;
        if (_planes)
        {
            tensor[i] = c0 * _multiply0 + _add0;
            tensor[_plane + i] = c1 * _multiply1 + _add1;
            tensor[2 * _plane + i] = c2 * _multiply2 + _add2;
        }
        else
        {
            tensor[3 * i] = c0 * _multiply0 + _add0;
            tensor[3 * i + 1] = c1 * _multiply1 + _add1;
            tensor[3 * i + 2] = c2 * _multiply2 + _add2;
        }
    }

    private static float Component(int index, float red, float green, float blue) => index switch { 0 => red, 1 => green, _ => blue };
}
