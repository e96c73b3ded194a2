namespace WasteClassifier.Components.Training;

/// <summary>Another trainer is running a job; the message is retried later (one job at a time across the cluster).</summary>
public sealed class TrainerBusyException(Guid jobId) : Exception($"another training job is running; job {jobId} waits");
