namespace WasteClassifier.Contracts.Messages;

/// <summary>Command: run the queued training job. The job's row holds its options; one job runs at a time.</summary>
public record TrainModel
{
    public required Guid TrainingJobId { get; init; }
    public required DateTimeOffset QueuedAt { get; init; }
}
