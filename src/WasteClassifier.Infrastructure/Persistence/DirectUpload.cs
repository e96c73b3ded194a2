namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>
/// An upload a client PUTs straight to the object store (presigned URL), then commits. The staged object lives under
/// <see cref="ObjectKey"/> until the commit moves it to its content-hash key; uncommitted ones expire and are removed.
/// </summary>
public class DirectUpload
{
    /// <summary>Random (not time-ordered): the API-served PUT URL of the embedded default is a capability.</summary>
    public Guid Id { get; set; }

    public required string ObjectKey { get; set; }
    public string? FileName { get; set; }
    public string? ContentType { get; set; }

    /// <summary>The size the client announced, if any; the commit checks the stored object against it.</summary>
    public long? DeclaredSize { get; set; }

    public string? Source { get; set; }
    public string Status { get; set; } = DirectUploadStatus.Pending;

    /// <summary>Set when committed: the classification created for it (answered again on a repeated commit).</summary>
    public Guid? ClassificationId { get; set; }

    public string? ErrorCode { get; set; }
    public string? Error { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime ExpiresAt { get; set; }
    public DateTime? CommittedAt { get; set; }

    /// <summary>
    /// Set when the upload is committed or refused: its presigned URL can still write the staged object until it
    /// expires, so housekeeping deletes the staged object once more after this time, then clears it.
    /// </summary>
    public DateTime? CleanupAt { get; set; }

    /// <summary>
    /// Failed deletes of the staged object, housekeeping's back-off and give-up count: each failure adds one and lengthens
    /// the wait; a failure that may pass (an outage) holds it a few short of the limit, so only refusals in a row (a 403)
    /// reach it. Given up, <see cref="CleanupAt"/> is cleared and this count left for an operator to find the object by.
    /// </summary>
    public int CleanupAttempts { get; set; }
}

public static class DirectUploadStatus
{
    public const string Pending = "pending";
    public const string Committed = "committed";
    public const string Refused = "refused";
    public const string Expired = "expired";
}
