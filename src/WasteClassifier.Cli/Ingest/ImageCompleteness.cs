using Microsoft.Win32.SafeHandles;

namespace WasteClassifier.Cli.Ingest;

/// <summary>
/// Whether a file holds a whole image by its format's own end marker, not only by a size that stopped changing: a writer
/// that pauses longer than the settle time (a slow FTP upload, a camera writing in pieces) leaves a steady but partial
/// file. A JPEG is complete once an end-of-image marker (FFD9) follows the primary image's start-of-scan (found by walking
/// the segments from SOI, so an embedded thumbnail's FFD9 does not count); a PNG once its IEND chunk is there. Other
/// formats, and files whose structure is not what their signature says, count as complete: the API judges those.
/// </summary>
public static class ImageCompleteness
{
    private static ReadOnlySpan<byte> PngSignature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>False only when the file is a JPEG or PNG that ends before its format says it does.</summary>
    public static bool IsComplete(string path)
    {
        try
        {
            using var handle = File.OpenHandle(path);
            var length = RandomAccess.GetLength(handle);
            Span<byte> head = stackalloc byte[8];
            var read = RandomAccess.Read(handle, head, 0);
            if (read >= 2 && head[0] == 0xFF && head[1] == 0xD8) return JpegComplete(handle, length);
            if (read == 8 && head.SequenceEqual(PngSignature)) return PngComplete(handle, length);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return true; // the read for sending meets the same error and handles it
        }
    }

    private static bool JpegComplete(SafeFileHandle handle, long length)
    {
        Span<byte> header = stackalloc byte[4];
        long position = 2;
        while (true)
        {
            if (RandomAccess.Read(handle, header[..1], position) < 1) return false;
            if (header[0] != 0xFF) return true; // not a marker where one must be: malformed, not partial
            position++;
            // Fill bytes (FF FF ...) may precede a marker.
            int marker;
            do
            {
                if (RandomAccess.Read(handle, header[..1], position) < 1) return false;
                marker = header[0];
                position++;
            } while (marker == 0xFF);
            if (marker == 0xD9) return true; // an end before any scan: malformed
            if (marker is >= 0xD0 and <= 0xD7 or 0x01) continue; // markers without a length
            if (RandomAccess.Read(handle, header[..2], position) < 2) return false;
            var segment = (header[0] << 8) | header[1];
            if (segment < 2) return true;
            position += segment;
            if (marker == 0xDA) break;
        }
        // Entropy-coded data never holds FF D9 (an FF in it is followed by 00 or a restart marker), so the first FF D9 after
        // the start of scan is the image's end; bytes after it (some cameras append data) are allowed.
        if (length < position + 2) return false;
        Span<byte> tail = stackalloc byte[2];
        if (RandomAccess.Read(handle, tail, length - 2) == 2 && tail[0] == 0xFF && tail[1] == 0xD9) return true;
        var buffer = new byte[64 * 1024];
        var previous = 0;
        for (var at = position; at < length;)
        {
            var n = RandomAccess.Read(handle, buffer, at);
            if (n <= 0) return false;
            for (var i = 0; i < n; i++)
            {
                if (previous == 0xFF && buffer[i] == 0xD9) return true;
                previous = buffer[i];
            }
            at += n;
        }
        return false;
    }

    private static bool PngComplete(SafeFileHandle handle, long length)
    {
        Span<byte> chunk = stackalloc byte[8];
        long position = 8;
        while (true)
        {
            if (RandomAccess.Read(handle, chunk, position) < 8) return false;
            var size = (long)(uint)((chunk[0] << 24) | (chunk[1] << 16) | (chunk[2] << 8) | chunk[3]);
            foreach (var c in chunk[4..])
                if (c is not (>= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z')) return true; // malformed
            // Length, type, data and CRC.
            var end = position + 12 + size;
            if (chunk[4..].SequenceEqual("IEND"u8)) return end <= length;
            position = end;
            if (position >= length) return false;
        }
    }
}
