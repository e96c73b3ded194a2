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

    /// <summary>Null: <see cref="DefaultEpochs"/>.</summary>
    public int? Epochs { get; init; }

    /// <summary>Null: <see cref="DefaultSeed"/>.</summary>
    public int? Seed { get; init; }

    public const int DefaultEpochs = 60, DefaultSeed = 42;

    /// <summary>
    /// These options with every default applied (an empty <see cref="BaseDataset"/> as <paramref name="defaultBaseDataset"/>):
    /// what the job will do, the same whether a default was sent or left out.
    /// </summary>
    public TrainingJobOptions Normalised(string defaultBaseDataset) => this with
    {
        BaseDataset = BaseDataset.Length == 0 ? defaultBaseDataset : BaseDataset,
        Epochs = Epochs ?? DefaultEpochs,
        Seed = Seed ?? DefaultSeed,
    };

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public static TrainingJobOptions FromJson(string json) => JsonSerializer.Deserialize<TrainingJobOptions>(json, JsonOptions) ?? new();

    public static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
}

public static class PromoteModes
{
    public const string Auto = "auto";
    public const string Manual = "manual";
}
