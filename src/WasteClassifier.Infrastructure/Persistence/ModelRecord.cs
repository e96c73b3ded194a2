namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>A model version in the registry. Its files live in the object store under <see cref="ArtifactPrefix"/>.</summary>
public class ModelRecord
{
    public required string Version { get; set; }
    public string? ParentVersion { get; set; }
    public string Status { get; set; } = ModelStatus.Candidate;

    /// <summary>
    /// bundled (shipped with the service), directory (another folder given as Model:Directory, e.g. from wastectl train),
    /// trained (by a training job) or imported (wastectl models import).
    /// </summary>
    public required string Origin { get; set; }

    public Guid? TrainingJobId { get; set; }

    /// <summary>The model's card.json.</summary>
    public required string CardJson { get; set; }

    /// <summary>Hold-out evaluation report (JSON) recorded when the model was registered; null if never evaluated.</summary>
    public string? MetricsJson { get; set; }

    /// <summary>Object-store prefix holding card.json and the files it names.</summary>
    public required string ArtifactPrefix { get; set; }

    public DateTime CreatedAt { get; set; }
    public DateTime? PromotedAt { get; set; }
}

public static class ModelStatus
{
    public const string Candidate = "candidate";
    public const string Active = "active";
    public const string Retired = "retired";
}
