namespace WasteClassifier.Infrastructure.Storage;

internal static class BoundedReads
{
    /// <summary>
    /// Reads a whole stream of at most <paramref name="maxBytes"/>. <paramref name="length"/> (Content-Length, a file's
    /// length) is the stream's exact length when known: a larger one is refused before reading anything.
    /// </summary>
    public static async Task<byte[]> ReadAsync(Stream stream, long? length, long maxBytes, string key, CancellationToken cancellationToken)
    {
        if (length > maxBytes) throw new ObjectTooLargeException(key, maxBytes);
        if (length is { } known)
        {
            var content = new byte[known];
            await stream.ReadExactlyAsync(content, cancellationToken);
            return content;
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > maxBytes) throw new ObjectTooLargeException(key, maxBytes);
        }
        return buffer.ToArray();
    }
}
