namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>An uploaded image as kept in the object store. The object key is generated, never the client's filename.</summary>
public class StoredImage
{
    public Guid Id { get; set; }
    public required string ObjectKey { get; set; }

    /// <summary>Hex SHA-256 of the bytes: deduplication and the hold-out split key.</summary>
    public required string ContentHash { get; set; }

    public long SizeBytes { get; set; }
    public string? ContentType { get; set; }

    /// <summary>The client's filename, sanitised; for display only.</summary>
    public string? FileName { get; set; }

    public required string Format { get; set; }
    public int Width { get; set; }
    public int Height { get; set; }
    public DateTime CreatedAt { get; set; }
}
