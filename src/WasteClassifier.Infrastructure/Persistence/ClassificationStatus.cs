namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>Life cycle of a classification row; stored as these lower-case strings.</summary>
public static class ClassificationStatus
{
    public const string Queued = "queued";
    public const string Processing = "processing";
    public const string Completed = "completed";
    public const string Failed = "failed";

    public static readonly IReadOnlyList<string> All = [Queued, Processing, Completed, Failed];

    /// <summary>The states a row never leaves: <see cref="IsFinal"/> in code, this list in SQL (the worker's claim).</summary>
    public static readonly IReadOnlyList<string> Final = [Completed, Failed];

    public static bool IsFinal(string status) => status is Completed or Failed;
}
