using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Classifying;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Apis;

/// <summary>Queue retraining jobs with labelled uploads, watch them, cancel them; label results (<c>/v1/training-jobs</c>).</summary>
public static class TrainingJobsApi
{
    public const string ImagesField = "images";

    public static void MapTrainingJobsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/v1/training-jobs").WithTags("Training");
        api.MapPost("/", SubmitAsync).WithName("SubmitTrainingJob").WithSummary("Upload labelled images (field 'images', with 'labels' per file or one 'label') and queue a training job").DisableAntiforgery()
            .AcceptsForm(new ApiResponses.FormBody(ImagesField, ManyFiles: true, ["label", .. OptionFields], RepeatedFields: ["labels"]))
            .Produces<SubmittedTrainingJob>(StatusCodes.Status202Accepted)
            .ProducesErrors(StatusCodes.Status400BadRequest, StatusCodes.Status409Conflict, StatusCodes.Status413PayloadTooLarge, StatusCodes.Status422UnprocessableEntity);
        api.MapGet("/{id:guid}", GetAsync).WithName("GetTrainingJob").WithSummary("Status, progress, metrics beside the active model's, and the promotion decision")
            .Produces<TrainingJobView>().ProducesErrors(StatusCodes.Status404NotFound);
        api.MapGet("/", ListAsync).WithName("ListTrainingJobs").WithSummary("Training jobs, newest first").Produces<TrainingJobList>();
        api.MapDelete("/{id:guid}", CancelAsync).WithName("CancelTrainingJob").WithSummary("Cancel a queued or running job; the active model is untouched (409 once the job is registering its candidate)")
            .Produces<TrainingJobView>(StatusCodes.Status202Accepted).ProducesErrors(StatusCodes.Status404NotFound, StatusCodes.Status409Conflict);

        app.MapPut("/v1/classifications/{id:guid}/label", LabelAsync).WithTags("Training")
            .WithName("LabelClassification").WithSummary("Correct or confirm a result; the image becomes a labelled sample").WithJsonBodyLimit(app)
            .Produces<LabelledClassification>().ProducesErrors(StatusCodes.Status400BadRequest, StatusCodes.Status404NotFound, StatusCodes.Status409Conflict,
                StatusCodes.Status413PayloadTooLarge, StatusCodes.Status415UnsupportedMediaType);
        app.MapPost("/retrain", RetrainAsync).WithTags("Service").WithName("Retrain")
            .WithSummary("The original API's retrain: field 'images' (+ 'label' or 'labels'); queues a training job").DisableAntiforgery()
            .Produces<RetrainQueued>(StatusCodes.Status202Accepted)
            .ProducesErrors(StatusCodes.Status400BadRequest, StatusCodes.Status409Conflict, StatusCodes.Status413PayloadTooLarge, StatusCodes.Status422UnprocessableEntity);
    }

    public sealed record LabelRequest(string? Label);

    /// <summary>The answer to a label: the label given, the model's prediction, and whether they agree.</summary>
    public sealed record LabelledClassification(Guid Id, string Label, string? PredictedClass, bool Agrees);

    /// <summary>The answer to <c>POST /v1/training-jobs</c>.</summary>
    public sealed record SubmittedTrainingJob(Guid Id, string Status, string Url, int ImagesAccepted, IReadOnlyList<RejectedImage> Rejected,
        IReadOnlyList<TrainingJobSubmitter.RelabelledSample> Relabelled, bool Replayed);

    /// <summary>The answer to the original API's <c>POST /retrain</c>, in its shape.</summary>
    public sealed record RetrainQueued(bool Success, string Message, int ImagesReceived, Guid JobId, string StatusUrl, IReadOnlyList<RejectedImage> Rejected,
        IReadOnlyList<TrainingJobSubmitter.RelabelledSample> Relabelled, bool Replayed);

    /// <summary>A training job as the API shows it. Options, metrics, decision and data counts are the JSON the trainer recorded.</summary>
    public sealed record TrainingJobView(Guid Id, string Status, TrainingProgress Progress, JsonElement? Options, bool CancelRequested, int Attempts,
        string? TrainerId, string? CandidateVersion, string? BaselineVersion, TrainingMetrics Metrics, JsonElement? Decision, JsonElement? DataCounts,
        string? Error, DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? HeartbeatAt, DateTimeOffset? FinishedAt)
    {
        public static TrainingJobView From(TrainingJob job) => new(
            job.Id,
            job.Status,
            new TrainingProgress(job.Stage, Math.Round(job.Percent, 1)),
            Json(job.OptionsJson),
            job.CancelRequested,
            job.Attempts,
            // Which trainer took it last (Training:TrainerId) and when it last said it was alive: what an operator looks at
            // for a job that seems stuck.
            job.TrainerId,
            job.CandidateVersion,
            job.BaselineVersion,
            new TrainingMetrics(Json(job.CandidateMetricsJson), Json(job.BaselineMetricsJson)),
            Json(job.DecisionJson),
            Json(job.DataCountsJson),
            job.Error,
            ClassificationView.Utc(job.CreatedAt),
            job.StartedAt is { } s ? ClassificationView.Utc(s) : null,
            job.HeartbeatAt is { } h ? ClassificationView.Utc(h) : null,
            job.FinishedAt is { } f ? ClassificationView.Utc(f) : null);

        private static JsonElement? Json(string? json) => json is null ? null : JsonDocument.Parse(json).RootElement.Clone();
    }

    public sealed record TrainingProgress(string? Stage, double Percent);

    /// <summary>The candidate's hold-out metrics beside those of the model it was judged against (<c>active</c>).</summary>
    public sealed record TrainingMetrics(JsonElement? Candidate, JsonElement? Active);

    public sealed record TrainingJobList(IEnumerable<TrainingJobView> Items);

    /// <summary>Failures that say the image itself cannot be read (not a passing outage): such an image teaches nothing.</summary>
    private static readonly HashSet<string?> UnusableImageErrors =
        [ImageErrors.Empty, ImageErrors.NotAnImage, ImageErrors.Corrupt, ImageErrors.TooManyPixels, ImageErrors.Unsupported, ClassificationBatchProcessor.MissingImage,
        ClassificationBatchProcessor.UnreadableImage, ImageErrors.Truncated];

    public static async Task<IResult> LabelAsync(Guid id, [FromBody] LabelRequest? request, ClassifierDbContext db, [FromServices] ModelRegistry registry,
        TimeProvider clock, CancellationToken cancellationToken)
    {
        var labels = await registry.ValidLabelsAsync(cancellationToken);
        // A body without the key (a misspelt one, or none) was answered as an unknown label.
        if (request?.Label is not { } label)
            return ApiErrors.Result(StatusCodes.Status400BadRequest, "missing_label",
                $"the body has no 'label': send {{\"label\": \"<class>\"}} with one of: {string.Join(", ", labels)}");
        if (!labels.Contains(label))
            return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_label", $"label must be one of: {string.Join(", ", labels)}");
        var row = await db.Classifications.AsNoTracking().FirstOrDefaultAsync(c => c.Id == id, cancellationToken);
        if (row is null) return ApiErrors.Result(StatusCodes.Status404NotFound, "not_found", $"no classification with id {id}");
        if (row.Status == ClassificationStatus.Failed && UnusableImageErrors.Contains(row.ErrorCode))
            return ApiErrors.Result(StatusCodes.Status409Conflict, "image_unusable",
                $"this classification failed with {row.ErrorCode}: its image cannot be read, so it cannot become a training sample");

        // Deleted, or labelled by another request, since the read (as for uploads): read again rather than a 500.
        var conflict = await SampleSaves.SaveAsync(db, async ct =>
        {
            var sample = await db.LabelledSamples.FirstOrDefaultAsync(s => s.ImageId == row.ImageId, ct);
            if (sample is null)
                db.LabelledSamples.Add(sample = new LabelledSample { Id = Guid.CreateVersion7(), ImageId = row.ImageId, Label = label, Origin = SampleOrigin.Feedback });
            sample.Label = label;
            sample.Origin = SampleOrigin.Feedback;
            sample.ClassificationId = id;
            sample.CreatedAt = clock.GetUtcNow().UtcDateTime;
        }, cancellationToken);
        if (conflict is not null) return conflict;
        return TypedResults.Ok(new LabelledClassification(id, label, row.PredictedClass, row.PredictedClass == label));
    }

    public static async Task<IResult> SubmitAsync(HttpRequest request, [FromServices] TrainingJobSubmitter submitter, [FromServices] UploadOptions uploads, CancellationToken cancellationToken)
    {
        // A retry (a timeout, a dropped connection) queued a second job, trained on the same samples.
        if (IdempotencyKeyHeader.Read(request, out var key) is { } invalidKey) return invalidKey;
        var (result, error) = await ReadAndSubmitAsync(request, submitter, uploads, cancellationToken, key);
        if (error is not null) return error;
        return TypedResults.Json(new SubmittedTrainingJob(result!.Job.Id, result.Job.Status, $"/v1/training-jobs/{result.Job.Id}", result.Accepted,
            result.Rejected, result.Relabelled, result.Replayed), statusCode: StatusCodes.Status202Accepted);
    }

    public static async Task<IResult> RetrainAsync(HttpRequest request, [FromServices] TrainingJobSubmitter submitter, [FromServices] UploadOptions uploads, CancellationToken cancellationToken)
    {
        // Keys as for POST /v1/training-jobs, and shared with it: both queue the same job, so a key is one job on either.
        if (IdempotencyKeyHeader.Read(request, out var key) is { } invalidKey) return invalidKey;
        var (result, error) = await ReadAndSubmitAsync(request, submitter, uploads, cancellationToken, key);
        if (error is not null) return error;
        return TypedResults.Json(new RetrainQueued(true, "Retraining queued", result!.Accepted, result.Job.Id, $"/v1/training-jobs/{result.Job.Id}",
            result.Rejected, result.Relabelled, result.Replayed), statusCode: StatusCodes.Status202Accepted);
    }

    private static async Task<(TrainingJobSubmitter.Result?, IResult?)> ReadAndSubmitAsync(HttpRequest request, TrainingJobSubmitter submitter, UploadOptions uploads, CancellationToken cancellationToken,
        IdempotencyKey? key = null)
    {
        // A job without uploads is a retrain on the base dataset and feedback.
        var (upload, error) = await ReadLabelledUploadAsync(request, uploads, filesRequired: false, cancellationToken);
        if (error is not null) return (null, error);
        if (!TryReadOptions(upload!.Form, out var options, out var optionsError)) return (null, optionsError);
        return await submitter.SubmitAsync(upload.Files, upload.Labels, options!, cancellationToken, key);
    }

    /// <summary>The form fields that set a training job's options (<see cref="TryReadOptions"/>).</summary>
    public static readonly IReadOnlyList<string> OptionFields = ["include_feedback", "base_dataset", "promote", "epochs", "seed"];

    /// <summary>A labelled upload: its files (field 'images'), the label of each, and the form's other fields.</summary>
    public sealed record LabelledUpload(IReadOnlyList<UploadedImage> Files, IReadOnlyList<string> Labels, IFormCollection Form);

    /// <summary>
    /// Reads and checks a labelled upload as training jobs and <c>POST /v1/samples</c> take it: files in 'images', with a
    /// 'labels' field per file or one 'label' for all (the labels' values are checked against the classes on saving).
    /// </summary>
    public static async Task<(LabelledUpload?, IResult?)> ReadLabelledUploadAsync(HttpRequest request, UploadOptions uploads, bool filesRequired,
        CancellationToken cancellationToken)
    {
        // Labels without files, or files in another field, are a mistake that would go on without the caller's images.
        var (upload, error) = await MultipartUploads.ReadAsync(request, ImagesField, uploads, cancellationToken, filesRequired: filesRequired, fieldsNeedingFiles: ["label", "labels"],
            repeatableFields: ["labels"]);
        if (error is not null) return (null, error);
        var form = upload!.Form;
        var labels = form["labels"].Select(l => l ?? "").ToList();
        var single = form["label"].ToString();
        // Which one was meant cannot be told: 'labels' won silently, and relabelled samples uploaded before.
        if (form.ContainsKey("label") && form.ContainsKey("labels"))
            return (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "conflicting_labels",
                "send either one 'label' for all files or a 'labels' field per file, not both"));
        if (upload.Files.Count > 0 && labels.Count == 0 && single.Length == 0)
            return (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "missing_labels", "give a 'labels' field per file, in order, or one 'label' for all files"));
        if (labels.Count > 0 && labels.Count != upload.Files.Count)
            return (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "label_count_mismatch", $"{upload.Files.Count} files but {labels.Count} labels"));
        var perFile = labels.Count > 0 ? labels : upload.Files.Select(_ => single).ToList();
        return (new LabelledUpload(upload.Files, perFile, form), null);
    }

    private static bool TryReadOptions(IFormCollection form, out TrainingJobOptions? options, out IResult? error)
    {
        options = null;
        error = null;
        bool? Bool(string name) => form[name].ToString() is { Length: > 0 } v ? bool.TryParse(v, out var b) ? b : null : true;
        // Absent: null. Present but not a whole number: false, so it is refused instead of silently ignored.
        bool TryInt(string name, out int? value)
        {
            value = null;
            if (form[name].ToString() is not { Length: > 0 } text) return true;
            if (!int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var number)) return false;
            value = number;
            return true;
        }
        var includeFeedback = Bool("include_feedback");
        if (includeFeedback is null)
        {
            error = ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_option", "include_feedback must be true or false");
            return false;
        }
        var promote = form["promote"].ToString() is { Length: > 0 } p ? p : PromoteModes.Auto;
        if (promote is not (PromoteModes.Auto or PromoteModes.Manual))
        {
            error = ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_option", "promote must be auto or manual");
            return false;
        }
        if (!TryInt("epochs", out var epochs) || epochs is < 1 or > 500)
        {
            error = ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_option", "epochs must be between 1 and 500");
            return false;
        }
        if (!TryInt("seed", out var seed))
        {
            error = ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_option", "seed must be a whole number");
            return false;
        }
        options = new TrainingJobOptions
        {
            IncludeFeedback = includeFeedback.Value,
            BaseDataset = form["base_dataset"].ToString() is { Length: > 0 } d ? d : "",
            Promote = promote,
            Epochs = epochs,
            Seed = seed,
        };
        return true;
    }

    public static async Task<IResult> GetAsync(Guid id, ClassifierDbContext db, CancellationToken cancellationToken)
    {
        var job = await db.TrainingJobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, cancellationToken);
        return job is null ? ApiErrors.Result(StatusCodes.Status404NotFound, "not_found", $"no training job with id {id}") : TypedResults.Ok(View(job));
    }

    public static async Task<IResult> ListAsync(ClassifierDbContext db, int? limit, CancellationToken cancellationToken)
    {
        var size = Math.Clamp(limit ?? 50, 1, 500);
        var jobs = await db.TrainingJobs.AsNoTracking().OrderByDescending(j => j.CreatedAt).Take(size).ToListAsync(cancellationToken);
        return TypedResults.Ok(new TrainingJobList(jobs.Select(View)));
    }

    public static async Task<IResult> CancelAsync(Guid id, ClassifierDbContext db, TimeProvider clock, [FromServices] TrainingSettings settings,
        CancellationToken cancellationToken)
    {
        var job = await db.TrainingJobs.FirstOrDefaultAsync(j => j.Id == id, cancellationToken);
        if (job is null) return ApiErrors.Result(StatusCodes.Status404NotFound, "not_found", $"no training job with id {id}");
        if (TrainingJobStatus.IsFinal(job.Status))
            return ApiErrors.Result(StatusCodes.Status409Conflict, "job_finished", $"the job already ended: {job.Status}");
        // Each case is one conditional statement, so a trainer that claims the job, or marks it as registering, at the same
        // moment either comes first or second, never in between. Not started: cancelled now (the trainer skips it when its
        // message arrives). Running: the request is taken only while the job can still honour it; the trainer reads it once
        // more in the statement that marks the job as registering.
        var now = clock.GetUtcNow().UtcDateTime;
        var taken = await db.TrainingJobs.Where(j => j.Id == id && j.Status == TrainingJobStatus.Queued)
                        .ExecuteUpdateAsync(s => s.SetProperty(j => j.CancelRequested, true).SetProperty(j => j.Status, TrainingJobStatus.Cancelled)
                            .SetProperty(j => j.Error, TrainingJobRunner.CancelledBeforeItStarted)
                            .SetProperty(j => j.FinishedAt, (DateTime?)now), cancellationToken) == 1
                    || await db.TrainingJobs.Where(j => j.Id == id && j.Status == TrainingJobStatus.Running && j.Stage != TrainingStages.Registering)
                        .ExecuteUpdateAsync(s => s.SetProperty(j => j.CancelRequested, true), cancellationToken) == 1;
        // A running job whose trainer stopped beating has no one to honour the request: it ends now.
        if (taken) await TrainingJobRunner.CancelAbandonedAsync(db, id, now.AddSeconds(-settings.StaleAfterSeconds), now);
        await db.Entry(job).ReloadAsync(cancellationToken);
        if (taken) return TypedResults.Json(View(job), statusCode: StatusCodes.Status202Accepted);
        return TrainingJobStatus.IsFinal(job.Status)
            ? ApiErrors.Result(StatusCodes.Status409Conflict, "job_finished", $"the job already ended: {job.Status}")
            : ApiErrors.Result(StatusCodes.Status409Conflict, "job_registering",
                "the job is registering its candidate model and can no longer be cancelled; roll back or leave the candidate unpromoted instead");
    }

    private static TrainingJobView View(TrainingJob job) => TrainingJobView.From(job);

}
