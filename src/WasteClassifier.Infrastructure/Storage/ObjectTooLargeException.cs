namespace WasteClassifier.Infrastructure.Storage;

/// <summary>A bounded read met an object larger than its bound; nothing beyond the bound was kept.</summary>
public sealed class ObjectTooLargeException(string key, long maxBytes)
    : Exception($"object {key} holds more than {maxBytes:N0} bytes")
{
    public string Key { get; } = key;
    public long MaxBytes { get; } = maxBytes;
}
