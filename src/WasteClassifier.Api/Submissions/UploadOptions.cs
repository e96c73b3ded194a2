namespace WasteClassifier.Api.Submissions;

/// <summary>Configuration section <c>Uploads</c>: limits applied to every upload before anything is stored.</summary>
public sealed class UploadOptions
{
    public const string Section = "Uploads";

    public long MaxFileBytes { get; set; } = 10 * 1024 * 1024;
    public int MaxFilesPerRequest { get; set; } = 100;
    public long MaxRequestBytes { get; set; } = 256L * 1024 * 1024;
    public long MaxPixels { get; set; } = 40_000_000;

    /// <summary>How long <c>POST /predict</c> waits for its result before answering 504 with the id to poll.</summary>
    public int PredictTimeoutSeconds { get; set; } = 30;
}
