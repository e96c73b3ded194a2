using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Apis;

/// <summary>
/// The labelled samples every training job trains on (<c>/v1/samples</c>): uploads with jobs, cancelled ones' included,
/// and corrections. Listing shows what a job will learn from; deleting one is the only way to take a sample out.
/// </summary>
public static class SamplesApi
{
    /// <summary>The length of <c>labelled_samples.label</c>.</summary>
    private const int MaxLabelLength = 64;

    public static void MapSamplesApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/v1/samples").WithTags("Training");
        api.MapGet("/", ListAsync).WithName("ListSamples")
            .WithSummary("Labelled samples, newest first; filter by label or by the training job they were uploaded with")
            .Produces<SamplePage>().ProducesErrors(StatusCodes.Status400BadRequest);
        // Writes, so admin-only like the other training writes (AccessPolicies).
        api.MapPost("/", UploadAsync).WithName("UploadSamples")
            .WithSummary("Upload labelled images (field 'images', with 'labels' per file or one 'label') as samples, queueing no job: the next job trains on them")
            .DisableAntiforgery()
            .AcceptsForm(new ApiResponses.FormBody(TrainingJobsApi.ImagesField, ManyFiles: true, ["label"], RepeatedFields: ["labels"]))
            .Produces<SavedSamples>(StatusCodes.Status201Created)
            .ProducesErrors(StatusCodes.Status400BadRequest, StatusCodes.Status409Conflict, StatusCodes.Status413PayloadTooLarge, StatusCodes.Status422UnprocessableEntity);
        api.MapDelete("/{id:guid}", DeleteAsync).WithName("DeleteSample")
            .WithSummary("Remove a labelled sample: later training jobs no longer train on it (its image is kept)")
            .Produces(StatusCodes.Status204NoContent).ProducesErrors(StatusCodes.Status404NotFound);
    }

    public sealed record SampleView(Guid Id, string Label, string Origin, Guid ImageId, string? ContentHash, string? Filename, Guid? TrainingJobId,
        Guid? ClassificationId, DateTimeOffset CreatedAt);

    public sealed record SamplePage(IReadOnlyList<SampleView> Items, string? NextCursor);

    /// <summary>The answer to <c>POST /v1/samples</c>: each accepted file's sample (<c>samples_saved</c> distinct ones), and the refused and relabelled files.</summary>
    public sealed record SavedSamples(IReadOnlyList<TrainingJobSubmitter.SavedSample> Items, int SamplesSaved, IReadOnlyList<RejectedImage> Rejected,
        IReadOnlyList<TrainingJobSubmitter.RelabelledSample> Relabelled, bool Replayed);

    public static async Task<IResult> ListAsync(ClassifierDbContext db, string? label, [FromQuery(Name = "training_job_id")] Guid? trainingJobId, int? limit,
        string? cursor, CancellationToken cancellationToken)
    {
        var size = limit ?? 50;
        if (size is < 1 or > 500) return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_limit", "limit must be between 1 and 500");
        // Any label a sample may hold (an older model's too), but one that fits the column and holds no control character.
        if (label is not null && (label.Length is 0 or > MaxLabelLength || label.Any(char.IsControl)))
            return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_label", $"label must be a class name of 1–{MaxLabelLength} characters, e.g. glass");

        var query = db.LabelledSamples.AsNoTracking();
        if (label is not null) query = query.Where(s => s.Label == label);
        if (trainingJobId is not null) query = query.Where(s => s.TrainingJobId == trainingJobId);
        // Ids are version 7 uuids, in the order samples were first labelled (created_at moves when one is labelled again),
        // and unique: the cursor is the last id of a page.
        if (cursor is not null)
        {
            if (!Guid.TryParseExact(cursor, "N", out var after))
                return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_cursor", "cursor is not one this API returned");
            query = query.Where(s => s.Id < after);
        }
        var rows = await query.OrderByDescending(s => s.Id).Take(size + 1)
            // A sample labelled from a classification shows that upload's name: the image's is its first upload's, maybe another line's.
            .Select(s => new SampleView(s.Id, s.Label, s.Origin, s.ImageId, s.Image!.ContentHash,
                db.Classifications.Where(c => c.Id == s.ClassificationId).Select(c => c.FileName).FirstOrDefault() ?? s.Image.FileName,
                s.TrainingJobId, s.ClassificationId, ClassificationView.Utc(s.CreatedAt)))
            .ToListAsync(cancellationToken);
        var next = rows.Count > size ? rows[size - 1].Id.ToString("N") : null;
        return TypedResults.Ok(new SamplePage(rows.Take(size).ToList(), next));
    }

    /// <summary>
    /// A training job's upload without the job: collecting samples over many requests (each of at most
    /// Uploads:MaxFilesPerRequest files) queued a job per request. The answer lists the sample of each accepted file (files
    /// of the same bytes share one, labelled as the last of them) and, as a job's does, the refused and relabelled files.
    /// </summary>
    public static async Task<IResult> UploadAsync(HttpRequest request, [FromServices] TrainingJobSubmitter submitter, [FromServices] UploadOptions uploads,
        CancellationToken cancellationToken)
    {
        if (IdempotencyKeyHeader.Read(request, out var key) is { } invalidKey) return invalidKey;
        var (upload, error) = await TrainingJobsApi.ReadLabelledUploadAsync(request, uploads, filesRequired: true, cancellationToken);
        if (error is not null) return error;
        // No job is queued, so a job's option would be silently dropped: the caller would expect it to apply to the next job.
        if (TrainingJobsApi.OptionFields.FirstOrDefault(upload!.Form.ContainsKey) is { } option)
            return ApiErrors.Result(StatusCodes.Status400BadRequest, "unexpected_option",
                $"{option} is a training job option, and POST /v1/samples queues no job; send it with POST /v1/training-jobs");
        var (result, saveError) = await submitter.SaveSamplesAsync(upload.Files, upload.Labels, cancellationToken, key);
        if (saveError is not null) return saveError;
        return TypedResults.Json(new SavedSamples(result!.Samples, result.Samples.Select(s => s.Id).Distinct().Count(), result.Rejected, result.Relabelled,
            result.Replayed), statusCode: StatusCodes.Status201Created);
    }

    public static async Task<IResult> DeleteAsync(Guid id, ClassifierDbContext db, CancellationToken cancellationToken)
    {
        // Only the label goes: the image may be a classification's too. A job that already read its samples keeps them.
        var deleted = await db.LabelledSamples.Where(s => s.Id == id).ExecuteDeleteAsync(cancellationToken);
        return deleted == 0 ? ApiErrors.Result(StatusCodes.Status404NotFound, "not_found", $"no labelled sample with id {id}") : TypedResults.NoContent();
    }
}
