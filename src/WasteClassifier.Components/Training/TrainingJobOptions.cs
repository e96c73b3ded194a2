using System.Text.Json;

namespace WasteClassifier.Components.Training;

/// <summary>What a training job was asked to do; stored as JSON on the job row.</summary>
public sealed record TrainingJobOptions
{
    /// <summary>Also train on operators' corrections (PUT /v1/classifications/{id}/label).</summary>
    public bool IncludeFeedback { get; init; } = true;

    /// <summary>Name of a configured base dataset (<c>Training:Datasets</c>), or <c>none</c> for labelled samples only.</summary>
    public string BaseDataset { get; init; } = "none";

    /// <summary><c>auto</c>: promote when the gate passes; <c>manual</c>: always leave the result a candidate.</summary>
    public string Promote { get; init; } = PromoteModes.Auto;

    public int? Epochs { get; init; }
    public int? Seed { get; init; }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public static TrainingJobOptions FromJson(string json) => JsonSerializer.Deserialize<TrainingJobOptions>(json, JsonOptions) ?? new();

    public static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
}

public static class PromoteModes
{
    public const string Auto = "auto";
    public const string Manual = "manual";
}
