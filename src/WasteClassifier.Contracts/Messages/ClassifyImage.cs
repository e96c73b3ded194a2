namespace WasteClassifier.Contracts.Messages;

/// <summary>Command: classify one stored image. Published by the API (or the re-publisher) once the image is stored and its row recorded.</summary>
public record ClassifyImage
{
    public required Guid ClassificationId { get; init; }

    /// <summary>Key of the image in the object store's image bucket.</summary>
    public required string ObjectKey { get; init; }

    public string? Source { get; init; }

    /// <summary>When the API accepted the image; queue wait is measured from here.</summary>
    public required DateTimeOffset SubmittedAt { get; init; }
}
