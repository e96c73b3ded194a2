namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>Life cycle of a classification row; stored as these lower-case strings.</summary>
public static class ClassificationStatus
{
    public const string Queued = "queued";
    public const string Processing = "processing";
    public const string Completed = "completed";
    public const string Failed = "failed";

    public static readonly IReadOnlyList<string> All = [Queued, Processing, Completed, Failed];

    /// <summary>The states a row never leaves; SQL takes this list (the worker's claim), code asks <see cref="IsFinal"/>.</summary>
    public static readonly IReadOnlyList<string> Final = [Completed, Failed];

    // From the one list, so a new final state cannot be final in code but not in the claim's SQL.
    public static bool IsFinal(string status) => Final.Contains(status);
}
