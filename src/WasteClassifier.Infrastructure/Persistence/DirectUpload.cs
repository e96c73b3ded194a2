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
    /// Deletes of the staged object the store failed; housekeeping waits longer after each and gives up after a number of
    /// them, clearing <see cref="CleanupAt"/> and leaving this count for an operator to find the object by.
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
