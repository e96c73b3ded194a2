namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>
/// A training upload (<c>POST /v1/training-jobs</c>, <c>POST /v1/samples</c>) sent with an Idempotency-Key: saved in the
/// transaction of its job and samples, so a retry under the key is answered with this one's result instead of doing it
/// again. One per caller (<see cref="Scope"/>, its API key's name), route and key.
/// </summary>
public class IdempotentRequest
{
    public required string Scope { get; set; }
    public required string Route { get; set; }
    public required string Key { get; set; }

    /// <summary>What a retry must match: the SHA-256 of the files, labels and options (defaults applied).</summary>
    public required string Fingerprint { get; set; }

    /// <summary>The job the request queued; none for samples alone.</summary>
    public Guid? TrainingJobId { get; set; }

    /// <summary>The answer's content, as the route reads it back.</summary>
    public required string ResultJson { get; set; }

    /// <summary>Past <c>Api:IdempotencyRetentionHours</c> after this the row is as good as absent, and swept.</summary>
    public DateTime CreatedAt { get; set; }
}
