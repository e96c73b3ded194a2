using System.Buffers.Binary;
using System.Text;

namespace WasteClassifier.LoadTesting.Images;

/// <summary>
/// Makes every upload of an image new content, as a camera's frames are: the API stores images by content hash, so a
/// folder of 200 images sent again and again would after the first round only ever meet images it already has. The
/// stamp is metadata that no decoder shows: a comment segment after a JPEG's start marker, a text chunk after a PNG's
/// header. The pixels stay the same.
/// </summary>
public static class UniqueStamp
{
    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
    private static readonly uint[] CrcTable = BuildCrcTable();

    public static bool CanStamp(ReadOnlySpan<byte> content) => IsJpeg(content) || IsPng(content);

    /// <summary>A copy of <paramref name="content"/> (a JPEG or PNG) carrying <paramref name="nonce"/>.</summary>
    public static byte[] Apply(ReadOnlySpan<byte> content, Guid nonce)
    {
        var text = Encoding.ASCII.GetBytes(nonce.ToString("N"));
        if (IsJpeg(content))
        {
            // FF FE, then the segment's length (counting its own two bytes), then the comment.
            var segment = new byte[4 + text.Length];
            segment[0] = 0xFF;
            segment[1] = 0xFE;
            BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(2), (ushort)(2 + text.Length));
            text.CopyTo(segment, 4);
            return Insert(content, 2, segment);
        }
        if (IsPng(content))
        {
            // After the signature and IHDR (length 4 + type 4 + 13 bytes + CRC 4): a tEXt chunk "wasteclassifier-nonce\0<hex>".
            var data = Encoding.ASCII.GetBytes("wasteclassifier-nonce\0").Concat(text).ToArray();
            var chunk = new byte[12 + data.Length];
            BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)data.Length);
            Encoding.ASCII.GetBytes("tEXt").CopyTo(chunk, 4);
            data.CopyTo(chunk, 8);
            BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), Crc32(chunk.AsSpan(4, 4 + data.Length)));
            return Insert(content, PngSignature.Length + 25, chunk);
        }
        throw new ArgumentException("only JPEG and PNG images can be stamped");
    }

    private static bool IsJpeg(ReadOnlySpan<byte> content) => content.Length > 4 && content[0] == 0xFF && content[1] == 0xD8;

    private static bool IsPng(ReadOnlySpan<byte> content) =>
        content.Length > PngSignature.Length + 25 && content.StartsWith(PngSignature) && content.Slice(12, 4).SequenceEqual("IHDR"u8);

    private static byte[] Insert(ReadOnlySpan<byte> content, int at, byte[] insert)
    {
        var result = new byte[content.Length + insert.Length];
        content[..at].CopyTo(result);
        insert.CopyTo(result, at);
        content[at..].CopyTo(result.AsSpan(at + insert.Length));
        return result;
    }

    // PNG's CRC-32 (ISO 3309, the zlib polynomial), over a chunk's type and data.
    private static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc ^ 0xFFFFFFFFu;
    }

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (var n = 0u; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}
