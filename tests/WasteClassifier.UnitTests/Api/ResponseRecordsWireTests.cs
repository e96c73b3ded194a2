using System.Text.Json;
using WasteClassifier.Api.Apis;
using WasteClassifier.Api.Extensions;
using WasteClassifier.Api.Ingestion;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.UnitTests.Api;

/// <summary>
/// The named response records (which give the OpenAPI document its schemas) write the same bytes as the anonymous objects
/// they replaced: each case pairs a record with the anonymous object the handler built before, copied from it.
/// </summary>
public sealed class ResponseRecordsWireTests
{
    private static readonly JsonSerializerOptions Json = Options();

    private static readonly Guid Id = Guid.Parse("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    private static readonly DateTimeOffset At = new(2026, 12, 2, 0, 16, 16, 481, TimeSpan.Zero);
    private static readonly RejectedImage Rejected = new(1, "notes.txt", "not_an_image", "notes.txt is not an image");
    private static readonly TrainingJobSubmitter.RelabelledSample Relabelled = new(2, "glass", "metal", 0);
    private static readonly DirectUploads.CommitItem Item = new(Id, "accepted", Id, "queued", "/v1/classifications/x", null, "a.jpg", null, null);

    private static JsonSerializerOptions Options()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        ApiExtensions.ConfigureJson(options);
        return options;
    }

    public static TheoryData<string, object, object> Cases() => new()
    {
        { "submit", new ClassificationsApi.SubmittedClassifications([new AcceptedImage(Id, "queued", "/v1/classifications/x", "a.jpg", 0)], [Rejected], false),
            new { items = new[] { new AcceptedImage(Id, "queued", "/v1/classifications/x", "a.jpg", 0) }, rejected = new[] { Rejected }, replayed = false } },
        { "submit refused", new ClassificationsApi.FilesRefused("not_an_image", "m", [Rejected]), new { error = "not_an_image", message = "m", rejected = new[] { Rejected } } },
        { "uploads", new UploadsApi.CreatedUploads([new UploadsApi.UploadView(Id, "PUT", "http://x/u", null, At)], At, "http://x/v1/uploads/commit"),
            new { uploads = new[] { new UploadsApi.UploadView(Id, "PUT", "http://x/u", null, At) }, expires_at = At, commit_url = "http://x/v1/uploads/commit" } },
        { "commit", new UploadsApi.CommittedUploads([Item], 1, 0), new { items = new[] { Item }, accepted = 1, refused = 0 } },
        { "commit refused", new UploadsApi.CommitRefused("e", "m", [Item]), new { error = "e", message = "m", items = new[] { Item } } },
        { "content", new UploadsApi.UploadedContent(Id, 1234L), new { id = Id, size = 1234L } },
        { "label", new TrainingJobsApi.LabelledClassification(Id, "glass", null, false), new { id = Id, label = "glass", predicted_class = (string?)null, agrees = false } },
        { "training job", new TrainingJobsApi.SubmittedTrainingJob(Id, "queued", "/v1/training-jobs/x", 3, [Rejected], [Relabelled], true),
            new { id = Id, status = "queued", url = "/v1/training-jobs/x", images_accepted = 3, rejected = new[] { Rejected }, relabelled = new[] { Relabelled }, replayed = true } },
        { "retrain", new TrainingJobsApi.RetrainQueued(true, "Retraining queued", 3, Id, "/v1/training-jobs/x", [Rejected], [Relabelled], false),
            new { success = true, message = "Retraining queued", images_received = 3, job_id = Id, status_url = "/v1/training-jobs/x", rejected = new[] { Rejected },
                relabelled = new[] { Relabelled }, replayed = false } },
        { "promote", new ModelsApi.PromotedModel("v2", "active", "v1", null, false), new { version = "v2", status = "active", previous_version = "v1", decision = (JsonElement?)null, forced = false } },
        { "gate", new ModelsApi.GateRefused("gate_refused", "m", Element("""{"refused":true}""")), new { error = "gate_refused", message = "m", decision = Element("""{"refused":true}""") } },
        { "rollback", new ModelsApi.RolledBackModel("v1", "active", null), new { version = "v1", status = "active", previous_version = (string?)null } },
        { "samples", new SamplesApi.SavedSamples([new TrainingJobSubmitter.SavedSample(0, Id, Id, "glass", null)], 1, [], [Relabelled], false),
            new { items = new[] { new TrainingJobSubmitter.SavedSample(0, Id, Id, "glass", null) }, samples_saved = 1, rejected = Array.Empty<RejectedImage>(),
                relabelled = new[] { Relabelled }, replayed = false } },
        { "sources", new SourcesApi.SourceList([], null), new { sources = Array.Empty<SourceReports.SourceSummary>(), without_source = (SourceReports.SourceSummary?)null } },
        { "classes", new ServiceApi.ClassList(["glass", "metal"], 2), new { classes = new[] { "glass", "metal" }, num_classes = 2 } },
        { "health", new ServiceApi.ServiceHealth("healthy", 12.5, true, "v1", new() { ["database"] = new ServiceApi.ComponentHealth("healthy", null) }, At),
            new { status = "healthy", uptime_seconds = 12.5, model_loaded = true, model_version = "v1",
                components = new Dictionary<string, object> { ["database"] = new { status = "healthy", detail = (string?)null } }, timestamp = At } },
        { "predict", new ServiceApi.Prediction(true, Id, "glass", 0.91234, 91.23, new Dictionary<string, double> { ["glass"] = 0.91234 }, "v1", 12.3, At),
            new { success = true, id = Id, predicted_class = "glass", confidence = (double?)0.91234, confidence_percent = 91.23,
                all_predictions = new Dictionary<string, double> { ["glass"] = 0.91234 }, model_version = "v1", latency_ms = 12.3, timestamp = At } },
        // The original API's errors leave out id and url where they have none.
        { "predict error", new ServiceApi.PredictFailure { Success = false, Error = "no_file", Message = "m" }, new { success = false, error = "no_file", message = "m" } },
        { "predict failed", new ServiceApi.PredictFailure { Success = false, Id = Id, Error = null, Message = null },
            new { success = false, id = Id, error = (string?)null, message = (string?)null } },
        { "predict timeout", new ServiceApi.PredictFailure { Success = false, Id = Id, Error = "timeout", Message = "m", Url = "/v1/classifications/x" },
            new { success = false, id = Id, error = "timeout", message = "m", url = "/v1/classifications/x" } },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Record_WritesTheBytesOfTheAnonymousObjectItReplaced(string answer, object record, object anonymous) =>
        Assert.True(JsonSerializer.Serialize(anonymous, anonymous.GetType(), Json) == JsonSerializer.Serialize(record, record.GetType(), Json),
            $"{answer}:\n{JsonSerializer.Serialize(anonymous, anonymous.GetType(), Json)}\n{JsonSerializer.Serialize(record, record.GetType(), Json)}");

    [Fact]
    public void TrainingJobView_WritesTheBytesOfTheAnonymousObjectItReplaced()
    {
        var job = new TrainingJob
        {
            Id = Id,
            Status = "running",
            Stage = "training",
            Percent = 42.25,
            OptionsJson = """{"epochs":5}""",
            CancelRequested = true,
            Attempts = 2,
            TrainerId = "t1",
            CandidateVersion = "v2",
            BaselineVersion = "v1",
            CandidateMetricsJson = """{"accuracy":0.9}""",
            DecisionJson = null,
            DataCountsJson = """{"glass":3}""",
            Error = null,
            CreatedAt = At.UtcDateTime,
            StartedAt = At.UtcDateTime,
            HeartbeatAt = null,
            FinishedAt = null,
        };
        // As TrainingJobsApi.View built it.
        var anonymous = new
        {
            id = job.Id,
            status = job.Status,
            progress = new { stage = job.Stage, percent = Math.Round(job.Percent, 1) },
            options = Parse(job.OptionsJson),
            cancel_requested = job.CancelRequested,
            attempts = job.Attempts,
            trainer_id = job.TrainerId,
            candidate_version = job.CandidateVersion,
            baseline_version = job.BaselineVersion,
            metrics = new { candidate = Parse(job.CandidateMetricsJson), active = Parse(job.BaselineMetricsJson) },
            decision = Parse(job.DecisionJson),
            data_counts = Parse(job.DataCountsJson),
            error = job.Error,
            created_at = ClassificationView.Utc(job.CreatedAt),
            started_at = job.StartedAt is { } s ? ClassificationView.Utc(s) : (DateTimeOffset?)null,
            heartbeat_at = job.HeartbeatAt is { } h ? ClassificationView.Utc(h) : (DateTimeOffset?)null,
            finished_at = job.FinishedAt is { } f ? ClassificationView.Utc(f) : (DateTimeOffset?)null,
        };
        Assert.Equal(JsonSerializer.Serialize(anonymous, Json), JsonSerializer.Serialize(TrainingJobsApi.TrainingJobView.From(job), Json));
    }

    private static JsonElement Element(string json) => JsonDocument.Parse(json).RootElement.Clone();

    private static JsonElement? Parse(string? json) => json is null ? null : Element(json);
}
