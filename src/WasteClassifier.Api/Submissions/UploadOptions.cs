namespace WasteClassifier.Api.Submissions;

/// <summary>Configuration section <c>Uploads</c>: limits applied to every upload before anything is stored.</summary>
public sealed class UploadOptions
{
    public const string Section = "Uploads";

    public long MaxFileBytes { get; set; } = 10 * 1024 * 1024;
    public int MaxFilesPerRequest { get; set; } = 100;
    public long MaxRequestBytes { get; set; } = 256L * 1024 * 1024;
    public long MaxPixels { get; set; } = 40_000_000;

    /// <summary>
    /// The body limit of the endpoints that take JSON (<c>POST /v1/uploads</c>, <c>POST /v1/uploads/commit</c>,
    /// <c>PUT /v1/classifications/{id}/label</c>) instead of <see cref="MaxRequestBytes"/>: parsing JSON costs several times
    /// its size in memory. 1 MiB holds a commit or a creation of thousands of uploads (about 40 and 400 bytes each).
    /// </summary>
    public long MaxJsonBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// The JSON routes' body limit as applied: never above <see cref="MaxRequestBytes"/>, so lowering only that one
    /// (below the 1 MiB default here) lowers both, and a larger JSON limit never raises the request cap on those routes.
    /// </summary>
    public long EffectiveJsonBodyBytes => Math.Min(MaxJsonBodyBytes, MaxRequestBytes);

    /// <summary>The setting that <see cref="EffectiveJsonBodyBytes"/> comes from, as an environment variable (413 messages).</summary>
    public string EffectiveJsonBodySetting => MaxJsonBodyBytes <= MaxRequestBytes ? $"{Section}__{nameof(MaxJsonBodyBytes)}" : $"{Section}__{nameof(MaxRequestBytes)}";

    /// <summary>Refuses at start a JSON body limit below 1 byte: every JSON route would answer 413.</summary>
    public UploadOptions Validated()
    {
        if (MaxJsonBodyBytes < 1)
            throw new InvalidOperationException($"{Section}:{nameof(MaxJsonBodyBytes)} is {MaxJsonBodyBytes}; it must be at least 1");
        return this;
    }

    /// <summary>How long <c>POST /predict</c> waits for its result before answering 504 with the id to poll.</summary>
    public int PredictTimeoutSeconds { get; set; } = 30;
}
