namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>One request to classify one image, with its result and the latency figures of the run that produced it.</summary>
public class Classification
{
    public Guid Id { get; set; }
    public Guid ImageId { get; set; }
    public StoredImage? Image { get; set; }
    public string? Source { get; set; }

    /// <summary>
    /// The name this upload's file had (made safe). Its own: the image row, shared by every upload of the same bytes, keeps
    /// the first upload's name. Null on rows written before it existed, which show the image's.
    /// </summary>
    public string? FileName { get; set; }
    public string Status { get; set; } = ClassificationStatus.Queued;

    /// <summary>Client-supplied key of the request that created this row, and the file's position in it.</summary>
    public string? IdempotencyKey { get; set; }
    public int IdempotencyIndex { get; set; }

    /// <summary>Whose key it is: the caller's API key name, or empty for callers without one (one scope for all of them).</summary>
    public string IdempotencyScope { get; set; } = "";

    /// <summary>
    /// Set with <see cref="IdempotencyKey"/>: what a repeat of the request must match besides the rows' source and images
    /// (its file count and the content hashes of the files it refused). Null on rows written before it existed.
    /// </summary>
    public string? IdempotencyFingerprint { get; set; }

    public string? PredictedClass { get; set; }
    public double? Confidence { get; set; }

    /// <summary>JSON object {label: probability}.</summary>
    public string? AllPredictions { get; set; }

    public string? ModelVersion { get; set; }
    public string? WorkerId { get; set; }
    public string? ErrorCode { get; set; }
    public string? Error { get; set; }

    public int? BatchSize { get; set; }
    public double? QueueMs { get; set; }
    public double? InferenceMs { get; set; }
    public double? TotalMs { get; set; }
    public int Attempts { get; set; }

    /// <summary>
    /// Set when the same bytes came from the same source within its duplicate window: this row is not classified but
    /// takes the result of that earlier classification (copied once it is final).
    /// </summary>
    public Guid? DuplicateOfId { get; set; }

    public DateTime CreatedAt { get; set; }
    public DateTime? PublishedAt { get; set; }
    public DateTime? StartedAt { get; set; }
    public DateTime? CompletedAt { get; set; }
}
