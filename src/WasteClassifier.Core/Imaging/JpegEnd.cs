namespace WasteClassifier.Core.Imaging;

/// <summary>
/// Whether a JPEG was cut short. Decoders show a truncated JPEG as far as its data goes (the rest grey), and the model
/// then classifies a mostly grey picture with high confidence; a partial image must not silently become a class.
/// </summary>
public static class JpegEnd
{
    /// <summary>
    /// True when <paramref name="bytes"/>, a JPEG, ends before its end-of-image marker: its segments, walked from SOI by
    /// their lengths, end before the first scan (SOS), or no FFD9 follows that scan's header. Entropy-coded data never
    /// holds FFD9 (a data byte FF is followed by 00 or a restart marker), so one after the first SOS is the image's end;
    /// bytes after it (camera trailers) are fine. A linear scan that allocates nothing; an FFD9 at the end, as in every
    /// complete file, is found at once. A structure it cannot follow is left to the decoder, which reports it.
    /// </summary>
    public static bool IsTruncated(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 2 || bytes[0] != 0xFF || bytes[1] != 0xD8) return false;
        var position = 2;
        while (true)
        {
            // Decoders skip stray bytes before a marker, and any number of FF fill bytes.
            var marker = bytes[position..].IndexOf((byte)0xFF);
            if (marker < 0) return true;
            position += marker;
            while (position < bytes.Length && bytes[position] == 0xFF) position++;
            if (position >= bytes.Length) return true;
            var code = bytes[position++];
            // Markers without a length: TEM, RST0-7, another SOI.
            if (code is 0x01 or (>= 0xD0 and <= 0xD8)) continue;
            // An EOI before any scan: no image data at all, which the decoder refuses as corrupt.
            if (code == 0xD9) return false;
            if (position + 2 > bytes.Length) return true;
            var length = (bytes[position] << 8) | bytes[position + 1];
            if (length < 2) return false;
            position += length;
            if (position > bytes.Length) return true;
            if (code == 0xDA) return bytes[position..].LastIndexOf([(byte)0xFF, (byte)0xD9]) < 0;
        }
    }
}
