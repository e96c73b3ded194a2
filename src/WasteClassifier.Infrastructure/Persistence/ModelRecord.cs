namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>A model version known to the registry; <see cref="CardJson"/> is its card.json.</summary>
public class ModelRecord
{
    public required string Version { get; set; }
    public string? ParentVersion { get; set; }

    /// <summary>candidate, active or retired.</summary>
    public string Status { get; set; } = "candidate";

    public required string CardJson { get; set; }

    /// <summary>Object-store prefix of the model's files; null for a model bundled with the service.</summary>
    public string? ArtifactPrefix { get; set; }

    public DateTime CreatedAt { get; set; }
    public DateTime? PromotedAt { get; set; }
}
