using System.Buffers;
using Microsoft.Win32.SafeHandles;
using WasteClassifier.Core.Imaging;

namespace WasteClassifier.Cli.Ingest;

/// <summary>
/// Whether a file holds a whole image by its format's own end marker, not only by a size that stopped changing: a writer
/// that pauses longer than the settle time (a slow FTP upload, a camera writing in pieces) leaves a steady but partial
/// file. A JPEG is judged by the API's own rule (<see cref="JpegEnd"/>: an end-of-image marker after the first scan), so
/// what the ingester sends the API does not refuse as truncated; a PNG is complete once its IEND chunk is there. A file
/// with nothing yet, or only the first bytes of a JPEG's or PNG's signature, is not complete. Other formats, and PNGs
/// whose structure is not what their signature says, count as complete: the API judges those.
/// </summary>
public static class ImageCompleteness
{
    public enum Verdict
    {
        Complete,
        /// <summary>Empty, a signature's first bytes only, or a PNG before its IEND.</summary>
        Incomplete,
        /// <summary>A JPEG that ends before its end-of-image marker: the API refuses it as truncated_image.</summary>
        JpegWithoutEnd,
    }

    private static ReadOnlySpan<byte> JpegSignature => [0xFF, 0xD8];
    private static ReadOnlySpan<byte> PngSignature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    // A JPEG is read whole for JpegEnd; one larger than this is left to the API, which refuses it for its size anyway.
    private const long MaxJpegBytes = 256L * 1024 * 1024;

    /// <summary>False when the file is empty, a signature's start, or a JPEG or PNG that ends before its format says it does.</summary>
    public static bool IsComplete(string path) => Check(path) == Verdict.Complete;

    public static Verdict Check(string path)
    {
        try
        {
            using var handle = File.OpenHandle(path);
            var length = RandomAccess.GetLength(handle);
            Span<byte> head = stackalloc byte[8];
            var read = RandomAccess.Read(handle, head, 0);
            // An FTP server creates the file at STOR, before its data arrives: nothing yet, or a signature cut short, is a
            // file still being written, not another format.
            if (read == 0 || read < JpegSignature.Length && head[..read].SequenceEqual(JpegSignature[..read])
                || read < PngSignature.Length && head[..read].SequenceEqual(PngSignature[..read])) return Verdict.Incomplete;
            if (head.StartsWith(JpegSignature)) return JpegComplete(handle, length) ? Verdict.Complete : Verdict.JpegWithoutEnd;
            if (head.SequenceEqual(PngSignature)) return PngComplete(handle, length) ? Verdict.Complete : Verdict.Incomplete;
            return Verdict.Complete;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Verdict.Complete; // the read for sending meets the same error and handles it
        }
    }

    private static bool JpegComplete(SafeFileHandle handle, long length)
    {
        if (length > MaxJpegBytes) return true;
        var buffer = ArrayPool<byte>.Shared.Rent((int)length);
        try
        {
            var filled = 0;
            while (filled < length)
            {
                var n = RandomAccess.Read(handle, buffer.AsSpan(filled, (int)length - filled), filled);
                if (n <= 0) break; // shrunk meanwhile: judged by what is there
                filled += n;
            }
            return !JpegEnd.IsTruncated(buffer.AsSpan(0, filled));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
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
