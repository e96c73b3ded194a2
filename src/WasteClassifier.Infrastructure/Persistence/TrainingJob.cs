namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>A queued or finished retraining run and what it decided.</summary>
public class TrainingJob
{
    public Guid Id { get; set; }
    public string Status { get; set; } = TrainingJobStatus.Queued;

    /// <summary>features, fitting, evaluating or registering while running.</summary>
    public string? Stage { get; set; }

    public double Percent { get; set; }

    /// <summary>The job's options as JSON (include_feedback, base_dataset, promote, head settings).</summary>
    public required string OptionsJson { get; set; }

    public string? Error { get; set; }
    public bool CancelRequested { get; set; }

    /// <summary>The version the job registered, if it got that far.</summary>
    public string? CandidateVersion { get; set; }

    /// <summary>The active version the candidate was compared with.</summary>
    public string? BaselineVersion { get; set; }

    public string? CandidateMetricsJson { get; set; }
    public string? BaselineMetricsJson { get; set; }

    /// <summary>JSON: promoted (bool) and the reasons.</summary>
    public string? DecisionJson { get; set; }

    /// <summary>Images per label the head was trained on (JSON object).</summary>
    public string? DataCountsJson { get; set; }

    public string? TrainerId { get; set; }

    /// <summary>
    /// Claims of the job by a trainer (one each time a trainer takes it, a stale job taken over included; a trainer that
    /// stops gracefully gives its claim back). A job whose trainers stopped <c>Training:MaxAttempts</c> times is failed.
    /// </summary>
    public int Attempts { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? StartedAt { get; set; }
    public DateTime? HeartbeatAt { get; set; }
    public DateTime? FinishedAt { get; set; }
}

public static class TrainingJobStatus
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";

    public static bool IsFinal(string status) => status is Succeeded or Failed or Cancelled;
}
