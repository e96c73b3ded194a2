namespace WasteClassifier.Contracts.Messages;

/// <summary>Command: classify one stored image. Published by the API (or the re-publisher) once the image is stored and its row recorded.</summary>
public record ClassifyImage
{
    public required Guid ClassificationId { get; init; }

    /// <summary>Key of the image in the object store's image bucket.</summary>
    public required string ObjectKey { get; init; }

    /// <summary>
    /// The image itself, when it is small (<c>Messaging:InlineImageBytes</c>): the worker then need not read it back from the
    /// object store, one request fewer per image. The store keeps its copy all the same (retraining, re-publishing), and
    /// messages without bytes (large images, re-published rows) are read from there. Optional, so old and new API and worker
    /// versions can share a queue.
    /// </summary>
    public byte[]? ImageBytes { get; init; }

    public string? Source { get; init; }

    /// <summary>When the API accepted the image; queue wait is measured from here.</summary>
    public required DateTimeOffset SubmittedAt { get; init; }
}
