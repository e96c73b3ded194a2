using Prometheus;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Components.Observability;

/// <summary>
/// The service's Prometheus metrics. Process-wide statics, so the batch processor, model provider and training runner each
/// record with one call. Each role's families are in a registry of their own, which only a host running that role exports
/// (<see cref="ObservabilityExtensions.AddExportedMetrics"/>): in the default registry every process exported every
/// family, a trainer the worker's histograms at 0, a worker the API's counters.
/// </summary>
public static class ClassifierMetrics
{
    private static readonly double[] LatencyBucketsSeconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

    /// <summary>What the API records: uploads taken in and refused, answered waits, queue depth, and its HTTP requests.</summary>
    public static readonly CollectorRegistry ApiRegistry = Metrics.NewCustomRegistry();

    /// <summary>What a worker records: classified batches and the model it serves.</summary>
    public static readonly CollectorRegistry WorkerRegistry = Metrics.NewCustomRegistry();

    /// <summary>Training jobs' durations: recorded by the trainer, and by the API for a job its DELETE ends.</summary>
    public static readonly CollectorRegistry TrainingRegistry = Metrics.NewCustomRegistry();

    private static readonly IMetricFactory Api = Metrics.WithCustomRegistry(ApiRegistry);
    private static readonly IMetricFactory Worker = Metrics.WithCustomRegistry(WorkerRegistry);
    private static readonly IMetricFactory Training = Metrics.WithCustomRegistry(TrainingRegistry);

    public static readonly Counter ImagesAccepted = Api.CreateCounter(
        "wasteclassifier_images_accepted_total", "Images accepted by the API and queued for classification");

    public static readonly Counter ImagesRejected = Api.CreateCounter(
        "wasteclassifier_images_rejected_total", "Uploaded files refused by the API, by reason", ["reason"]);

    public static readonly Counter ImagesClassified = Worker.CreateCounter(
        "wasteclassifier_images_classified_total", "Images classified by this worker, by model version", ["model_version"]);

    public static readonly Counter ImagesFailed = Worker.CreateCounter(
        "wasteclassifier_images_failed_total", "Images this worker could not classify, by reason", ["reason"]);

    public static readonly Histogram BatchSize = Worker.CreateHistogram(
        "wasteclassifier_batch_size", "Images per classified batch",
        new HistogramConfiguration { Buckets = [1, 2, 4, 8, 12, 16, 24, 32, 64] });

    public static readonly Histogram InferenceSeconds = Worker.CreateHistogram(
        "wasteclassifier_inference_duration_seconds", "One model call over a whole batch",
        new HistogramConfiguration { Buckets = LatencyBucketsSeconds, LabelNames = ["model_version"] });

    public static readonly Counter InferenceCpuSeconds = Worker.CreateCounter(
        "wasteclassifier_inference_cpu_seconds_total",
        "CPU time of the model calls counted in wasteclassifier_inference_duration_seconds (Linux, one intra-op thread per " +
        "lane, the default): their duration's sum minus this is time the model waited for a core", ["model_version"]);

    public static readonly Histogram EndToEndSeconds = Worker.CreateHistogram(
        "wasteclassifier_end_to_end_duration_seconds", "From upload accepted to result written, per image",
        new HistogramConfiguration { Buckets = LatencyBucketsSeconds });

    public static readonly Histogram QueueWaitSeconds = Worker.CreateHistogram(
        "wasteclassifier_queue_wait_duration_seconds", "From upload accepted to a worker claiming the image",
        new HistogramConfiguration { Buckets = LatencyBucketsSeconds });

    public static readonly Counter WaitsAnswered = Api.CreateCounter(
        "wasteclassifier_waits_answered_total",
        "Waiting requests (long polls, /predict) answered because their result was final, by how this API learned it: " +
        "event (a worker's ClassificationsFinished) or check (its own database check)", ["by"]);

    public static readonly Gauge ModelInUse = Worker.CreateGauge(
        "wasteclassifier_model_in_use", "1 for the model version this process serves", ["model_version"]);

    public static readonly Gauge Classifications = Api.CreateGauge(
        "wasteclassifier_classifications", "Classification rows in the database by status (queued = queue depth), read at scrape", ["status"]);

    public static readonly Histogram TrainingJobSeconds = Training.CreateHistogram(
        "wasteclassifier_training_job_duration_seconds", "Training jobs from start to finish, by final status",
        new HistogramConfiguration { Buckets = [10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200], LabelNames = ["status"] });

    private static readonly Lock ModelLock = new();
    private static string? _modelVersion;

    /// <summary>Records a committed batch from its rows: outcome counts, batch size, inference time (and CPU time) and per-image latencies.</summary>
    public static void RecordBatch(IReadOnlyCollection<Classification> rows, string modelVersion, double inferenceMs, double? inferenceCpuMs = null)
    {
        var completed = RecordRows(rows);
        if (completed == 0) return;
        ImagesClassified.WithLabels(modelVersion).Inc(completed);
        InferenceSeconds.WithLabels(modelVersion).Observe(inferenceMs / 1000);
        if (inferenceCpuMs is { } cpu) InferenceCpuSeconds.WithLabels(modelVersion).Inc(cpu / 1000);
    }

    /// <summary>Records a committed batch's rows without the model's figures (none ran: every row failed before it); returns how many completed.</summary>
    public static int RecordRows(IReadOnlyCollection<Classification> rows)
    {
        BatchSize.Observe(rows.Count);
        var completed = 0;
        foreach (var row in rows)
        {
            if (row.Status == ClassificationStatus.Completed) completed++;
            else if (row.Status == ClassificationStatus.Failed) ImagesFailed.WithLabels(row.ErrorCode ?? "unknown").Inc();
            if (row.TotalMs is { } total) EndToEndSeconds.Observe(total / 1000);
            if (row.QueueMs is { } queue) QueueWaitSeconds.Observe(queue / 1000);
        }
        return completed;
    }

    /// <summary>Moves the "in use" gauge to <paramref name="version"/> (the old version's series is removed).</summary>
    public static void ServingModel(string version)
    {
        lock (ModelLock)
        {
            if (_modelVersion is { } previous && previous != version) ModelInUse.RemoveLabelled(previous);
            ModelInUse.WithLabels(version).Set(1);
            _modelVersion = version;
        }
    }

    public static void TrainingJobFinished(string status, DateTime? startedAt, DateTime finishedAt)
    {
        if (startedAt is { } started) TrainingJobSeconds.WithLabels(status).Observe(Math.Max(0, (finishedAt - started).TotalSeconds));
    }
}
