using WasteClassifier.Components.Classifying;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Apis;

/// <summary>A classification as the API shows it (snake_case on the wire).</summary>
public sealed record ClassificationView(
    Guid Id,
    string Status,
    string? Source,
    string? PredictedClass,
    double? Confidence,
    IReadOnlyDictionary<string, double>? AllPredictions,
    string? ModelVersion,
    string? WorkerId,
    string? Error,
    string? ErrorCode,
    TimingsView Timings,
    string? Filename,
    DateTimeOffset CreatedAt,
    DateTimeOffset? CompletedAt,
    Guid? DuplicateOf = null)
{
    public static ClassificationView From(Classification row) => new(
        row.Id,
        row.Status,
        row.Source,
        row.PredictedClass,
        row.Confidence,
        row.AllPredictions is null ? null : ClassificationResultJson.Deserialize(row.AllPredictions),
        row.ModelVersion,
        row.WorkerId,
        row.Error,
        row.ErrorCode,
        new TimingsView(row.QueueMs, row.InferenceMs, row.TotalMs, row.BatchSize),
        // The upload's own name; rows from before it was recorded show their image's (its first upload's).
        row.FileName ?? row.Image?.FileName,
        Utc(row.CreatedAt),
        row.CompletedAt is { } completed ? Utc(completed) : null,
        row.DuplicateOfId);

    // SQLite hands DateTime back without a kind; every stored time is UTC.
    public static DateTimeOffset Utc(DateTime value) => new(DateTime.SpecifyKind(value, DateTimeKind.Utc));
}

public sealed record TimingsView(double? QueueMs, double? InferenceMs, double? TotalMs, int? BatchSize);

public sealed record ClassificationPage(IReadOnlyList<ClassificationView> Items, string? NextCursor);

/// <summary>A page of <c>GET /v1/classifications/finished</c>: <see cref="NextCursor"/> always set, <see cref="HasMore"/> when another page is ready now.</summary>
public sealed record FinishedPage(IReadOnlyList<ClassificationView> Items, string NextCursor, bool HasMore);
