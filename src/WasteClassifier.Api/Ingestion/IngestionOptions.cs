namespace WasteClassifier.Api.Ingestion;

/// <summary>Configuration section <c>Ingestion</c>: duplicate frames and direct-to-storage uploads.</summary>
public sealed class IngestionOptions
{
    public const string Section = "Ingestion";

    /// <summary>
    /// Seconds in which an image whose bytes already came from the same source is recorded as a duplicate of that
    /// earlier classification instead of being classified again; 0 turns it off.
    /// </summary>
    public int DuplicateWindowSeconds { get; set; }

    /// <summary>Per-source windows (<c>Ingestion:DuplicateWindows:line-3=10</c>) that replace <see cref="DuplicateWindowSeconds"/>.</summary>
    public Dictionary<string, int> DuplicateWindows { get; set; } = new(StringComparer.Ordinal);

    /// <summary>How long a presigned upload URL (and the upload id) stays valid before it must be committed.</summary>
    public int UploadExpirySeconds { get; set; } = 900;

    /// <summary>How often duplicates waiting on their original are resolved and expired uploads removed.</summary>
    public double HousekeepingIntervalSeconds { get; set; } = 2;

    public const int MaxDuplicateWindowSeconds = 7 * 24 * 3600;

    public TimeSpan DuplicateWindowFor(string? source, int? requestedSeconds)
    {
        if (source is null) return TimeSpan.Zero;
        var seconds = requestedSeconds ?? (DuplicateWindows.TryGetValue(source, out var own) ? own : DuplicateWindowSeconds);
        return TimeSpan.FromSeconds(Math.Clamp(seconds, 0, MaxDuplicateWindowSeconds));
    }
}
