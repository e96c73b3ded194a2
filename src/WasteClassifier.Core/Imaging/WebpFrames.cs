using System.Buffers.Binary;

namespace WasteClassifier.Core.Imaging;

/// <summary>Counts the frames of a WebP file by walking its RIFF chunks (no pixel is decoded).</summary>
public static class WebpFrames
{
    /// <summary>The number of ANMF (animation frame) chunks; 1 for a still image or anything that is not a WebP RIFF.</summary>
    public static int Count(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 12 || !bytes[..4].SequenceEqual("RIFF"u8) || !bytes.Slice(8, 4).SequenceEqual("WEBP"u8)) return 1;
        var frames = 0;
        var position = 12L;
        while (position + 8 <= bytes.Length)
        {
            var chunk = bytes.Slice((int)position, 4);
            var size = BinaryPrimitives.ReadUInt32LittleEndian(bytes.Slice((int)position + 4, 4));
            if (chunk.SequenceEqual("ANMF"u8)) frames++;
            position += 8 + size + (size & 1); // chunks are padded to an even length
        }
        return Math.Max(1, frames);
    }
}
