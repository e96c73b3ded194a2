namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>Life cycle of a classification row; stored as these lower-case strings.</summary>
public static class ClassificationStatus
{
    public const string Queued = "queued";
    public const string Processing = "processing";
    public const string Completed = "completed";
    public const string Failed = "failed";

    public static readonly IReadOnlyList<string> All = [Queued, Processing, Completed, Failed];

    public static bool IsFinal(string status) => status is Completed or Failed;
}
