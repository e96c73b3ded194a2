using System.Text.Json;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// Queues a training job: stores its labelled images as samples (a later label for the same image replaces the
/// earlier one), records the job and sends <see cref="TrainModel"/> to the trainer's queue.
/// </summary>
public sealed class TrainingJobSubmitter(
    ClassifierDbContext db,
    ImageIntake intake,
    ModelRegistry registry,
    ISendEndpointProvider sendEndpoints,
    MessagingOptions messaging,
    TrainingSettings settings,
    TimeProvider clock,
    ILogger<TrainingJobSubmitter> logger,
    IdempotencyOptions? idempotency = null)
{
    private readonly IdempotencyOptions _idempotency = idempotency ?? IdempotencyOptions.Default;

    /// <summary>The routes whose Idempotency-Keys are kept apart (<see cref="IdempotentRequest.Route"/>).</summary>
    public const string JobRoute = "training-jobs", SamplesRoute = "samples";

    /// <param name="Replayed">The answer of an earlier request under the same Idempotency-Key: nothing was done.</param>
    public sealed record Result(TrainingJob Job, int Accepted, IReadOnlyList<RejectedImage> Rejected, IReadOnlyList<RelabelledSample> Relabelled, bool Replayed = false);

    /// <summary>What an Idempotency-Key's record keeps of a job's answer besides the job.</summary>
    private sealed record StoredJobResult(int Accepted, IReadOnlyList<RejectedImage> Rejected, IReadOnlyList<RelabelledSample> Relabelled);

    /// <summary>
    /// An image whose sample this request left under another label than it had: one uploaded or corrected before
    /// (<paramref name="PreviousIndex"/> null), or, new to this request, its first file's. <paramref name="Index"/> is the
    /// last file of those bytes, whose label the sample keeps.
    /// </summary>
    public sealed record RelabelledSample(int Index, string PreviousLabel, string Label, int? PreviousIndex);

    /// <summary>A sample <c>POST /v1/samples</c> saved: <paramref name="Index"/> is the file's; files of the same bytes share one sample, whose label is the last of them.</summary>
    public sealed record SavedSample(int Index, Guid Id, Guid ImageId, string Label, string? Filename);

    public sealed record SamplesResult(IReadOnlyList<SavedSample> Samples, IReadOnlyList<RejectedImage> Rejected, IReadOnlyList<RelabelledSample> Relabelled,
        bool Replayed = false);

    /// <param name="key">An Idempotency-Key: a repeat of the request that saved it is answered with that request's job and
    /// report (nothing is done), another request under it with a 422.</param>
    public async Task<(Result?, IResult?)> SubmitAsync(IReadOnlyList<UploadedImage> files, IReadOnlyList<string> labels, TrainingJobOptions options, CancellationToken cancellationToken,
        IdempotencyKey? key = null)
    {
        // A retry is answered with its first answer before checks against what may have changed since (the model's
        // classes, the datasets): only a new request is checked. Defaults applied, so a default sent or left out is alike.
        var fingerprint = key is null ? "" : IdempotencyFingerprints.OfLabelled(files, labels, options.Normalised(settings.BaseDataset).ToJson());
        if (key is not null && await ReplayJobAsync(key, fingerprint, cancellationToken) is { } replay) return replay;
        if (await CheckLabelsAsync(labels, cancellationToken) is { } invalid) return (null, invalid);
        var dataset = options.BaseDataset.Length == 0 ? settings.BaseDataset : options.BaseDataset;
        if (dataset != "none" && !settings.Datasets.ContainsKey(dataset))
            return (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_option", $"base_dataset must be none or one of: {string.Join(", ", settings.Datasets.Keys)}"));
        options = options with { BaseDataset = dataset };

        var (accepted, rejected) = await intake.TakeAsync(files, cancellationToken);
        if (files.Count > 0 && accepted.Count == 0)
            return (null, NoneAccepted(files, rejected));
        // The objects and image rows are stored: the samples and the job are saved and queued, whether or not the client is
        // still there (a sample no row names would be lost to the caller, who sees an error and may not send it again).
        using var recording = new AfterClientAbort(cancellationToken);

        var now = clock.GetUtcNow().UtcDateTime;
        var job = new TrainingJob { Id = Guid.CreateVersion7(), OptionsJson = options.ToJson(), CreatedAt = now };
        var samples = accepted.Select(a => (a.File.Index, a.Image, labels[a.File.Index])).ToList();
        List<RelabelledSample> relabelled = [];
        IResult? conflict;
        try
        {
            conflict = await SampleSaves.SaveAsync(db, async ct =>
            {
                // The job is saved with its samples and its Idempotency-Key, in one transaction.
                db.TrainingJobs.Add(job);
                (relabelled, _) = await AddSamplesAsync(samples, job.Id, now, ct);
                Remember(key, JobRoute, fingerprint, job.Id, new StoredJobResult(accepted.Count, rejected, relabelled), now);
            }, recording.Token, savedAnyway: async (failure, ct) =>
            {
                // The id is new (version 7, made by this request): found, it is this job, saved with its samples in one
                // transaction. Answered 503 instead, the job stayed queued without its message and the client's retry queued a
                // second one.
                if (!await CommitOutcomes.ReadOnceAsync(db, t => db.TrainingJobs.AsNoTracking().AnyAsync(j => j.Id == job.Id, t), ct)) return false;
                logger.LogWarning(failure, "Saved training job {TrainingJobId} whose commit was not acknowledged; sending it", job.Id);
                return true;
            });
        }
        catch (DbUpdateException) when (key is not null)
        {
            // A request under the same key saved first (this save failed on the key): answered as its repeat, or refused.
            db.ChangeTracker.Clear();
            if (await ReplayJobAsync(key, fingerprint, recording.Token) is { } earlier) return earlier;
            throw;
        }
        if (conflict is not null) return (null, conflict);

        await SendAsync(job.Id, recording.Token);
        logger.LogInformation("Queued training job {TrainingJobId} with {Images} labelled image(s), {Relabelled} relabelled", job.Id, accepted.Count, relabelled.Count);
        return (new Result(job, accepted.Count, rejected, relabelled), null);
    }

    /// <summary>
    /// Stores labelled images as samples, as <see cref="SubmitAsync"/> does, and queues no job: the next job trains on them
    /// (<c>POST /v1/samples</c>, to collect samples over many requests for one job).
    /// </summary>
    public async Task<(SamplesResult?, IResult?)> SaveSamplesAsync(IReadOnlyList<UploadedImage> files, IReadOnlyList<string> labels, CancellationToken cancellationToken,
        IdempotencyKey? key = null)
    {
        if (files.Count == 0) return (null, ApiErrors.Result(StatusCodes.Status400BadRequest, "no_file", "send one or more files in 'images'"));
        // As for a job: a retry is replayed before its labels are checked against the classes, which may have changed.
        var fingerprint = key is null ? "" : IdempotencyFingerprints.OfLabelled(files, labels, SamplesRoute);
        if (key is not null && await ReplaySamplesAsync(key, fingerprint, cancellationToken) is { } replay) return replay;
        if (await CheckLabelsAsync(labels, cancellationToken) is { } invalid) return (null, invalid);
        var (accepted, rejected) = await intake.TakeAsync(files, cancellationToken);
        if (accepted.Count == 0) return (null, NoneAccepted(files, rejected));
        // As for a job: once the objects are stored, their samples are saved even when the client has gone.
        using var recording = new AfterClientAbort(cancellationToken);

        var now = clock.GetUtcNow().UtcDateTime;
        // Whole microseconds, as PostgreSQL keeps them: the Idempotency-Key record's created_at read back marks this request's save.
        now = now.AddTicks(-(now.Ticks % 10));
        var samples = accepted.Select(a => (a.File.Index, a.Image, labels[a.File.Index])).ToList();
        SamplesResult? result = null;
        IResult? conflict;
        try
        {
            conflict = await SampleSaves.SaveAsync(db, async ct =>
            {
                var (relabelled, byImage) = await AddSamplesAsync(samples, jobId: null, now, ct);
                var saved = accepted.Select(a => (a.File, Sample: byImage[a.Image.Id]))
                    .Select(s => new SavedSample(s.File.Index, s.Sample.Id, s.Sample.ImageId, s.Sample.Label, FileNames.Sanitize(s.File.FileName))).ToList();
                result = new SamplesResult(saved, rejected, relabelled);
                Remember(key, SamplesRoute, fingerprint, jobId: null, result, now);
            }, recording.Token, savedAnyway: (failure, ct) => SamplesSavedAnywayAsync(failure, result!, key, fingerprint, now, ct));
        }
        catch (DbUpdateException) when (key is not null)
        {
            db.ChangeTracker.Clear();
            if (await ReplaySamplesAsync(key, fingerprint, recording.Token) is { } earlier) return earlier;
            throw;
        }
        if (conflict is not null) return (null, conflict);

        logger.LogInformation("Saved {Images} labelled image(s) as samples without a job, {Relabelled} relabelled", accepted.Count, result!.Relabelled.Count);
        return (result, null);
    }

    /// <summary>
    /// Whether a failed save of <c>POST /v1/samples</c> committed all the same (see <see cref="CommitOutcomes"/>): answered
    /// 503, its retried INSERT meeting its own rows or its retries run out, for samples it had saved. Read once: each
    /// sample holds this request's label (a new one's id is new, version 7, made by this request, so found, the transaction
    /// that saved it committed), and the Idempotency-Key's record, saved with them, is there with this request's
    /// <paramref name="now"/>: a request under the same key that saved first is replayed, its labels not taken for this one's.
    /// Without a key, a sample stored before and relabelled here may hold the label another request gave it: not counted.
    /// </summary>
    private async Task<bool> SamplesSavedAnywayAsync(Exception failure, SamplesResult staged, IdempotencyKey? key, string fingerprint, DateTime now,
        CancellationToken cancellationToken)
    {
        if (key is null && staged.Relabelled.Any(r => r.PreviousIndex is null)) return false;
        var labels = staged.Samples.DistinctBy(s => s.Id).ToDictionary(s => s.Id, s => s.Label);
        var ids = labels.Keys.ToList();
        var saved = await CommitOutcomes.ReadOnceAsync(db, async ct =>
        {
            var stored = await db.LabelledSamples.AsNoTracking().Where(s => ids.Contains(s.Id)).Select(s => new { s.Id, s.Label }).ToListAsync(ct);
            return stored.Count == labels.Count && stored.All(s => labels[s.Id] == s.Label)
                && (key is null || await db.IdempotentRequests.AsNoTracking()
                    .AnyAsync(r => r.Scope == key.Scope && r.Route == SamplesRoute && r.Key == key.Value && r.Fingerprint == fingerprint && r.CreatedAt == now, ct));
        }, cancellationToken);
        if (saved) logger.LogWarning(failure, "Saved {Samples} sample(s) whose commit was not acknowledged; answering them", labels.Count);
        return saved;
    }

    private void Remember(IdempotencyKey? key, string route, string fingerprint, Guid? jobId, object result, DateTime now)
    {
        if (key is null) return;
        db.IdempotentRequests.Add(new IdempotentRequest
        {
            Scope = key.Scope,
            Route = route,
            Key = key.Value,
            Fingerprint = fingerprint,
            TrainingJobId = jobId,
            ResultJson = JsonSerializer.Serialize(result, result.GetType()),
            CreatedAt = now,
        });
    }

    /// <summary>
    /// The earlier request under <paramref name="key"/> on <paramref name="route"/>: null if none or expired
    /// (<see cref="IdempotencyOptions.Retention"/>); a 422 if it was another request.
    /// </summary>
    private async Task<(IdempotentRequest? Earlier, IResult? Reused)> FindEarlierAsync(IdempotencyKey key, string route, string fingerprint, CancellationToken cancellationToken)
    {
        var earlier = await db.IdempotentRequests.AsNoTracking()
            .FirstOrDefaultAsync(r => r.Scope == key.Scope && r.Route == route && r.Key == key.Value, cancellationToken);
        var expiredBefore = _idempotency.ExpiredBefore(clock.GetUtcNow().UtcDateTime);
        if (earlier is not null && earlier.CreatedAt < expiredBefore)
        {
            // Expired, the sweep not yet there: gone now, or the new request's record would fail on its key. A fresh record
            // saved meanwhile under the key is kept (the condition), and this request's save then fails on it and replays it.
            await db.IdempotentRequests.Where(r => r.Scope == key.Scope && r.Route == route && r.Key == key.Value && r.CreatedAt < expiredBefore)
                .ExecuteDeleteAsync(cancellationToken);
            return (null, null);
        }
        if (earlier is null || earlier.Fingerprint == fingerprint) return (earlier, null);
        logger.LogInformation("Idempotency-Key reused for another request on {Route} (scope {Scope}); refused", route, key.Scope.Length == 0 ? "(none)" : key.Scope);
        return (null, IdempotencyKeyHeader.Reused("other files, file contents, labels or options"));
    }

    private async Task<(Result?, IResult?)?> ReplayJobAsync(IdempotencyKey key, string fingerprint, CancellationToken cancellationToken)
    {
        var (earlier, reused) = await FindEarlierAsync(key, JobRoute, fingerprint, cancellationToken);
        if (reused is not null) return (null, reused);
        if (earlier is null) return null;
        var job = await db.TrainingJobs.AsNoTracking().FirstAsync(j => j.Id == earlier.TrainingJobId, cancellationToken);
        var stored = JsonSerializer.Deserialize<StoredJobResult>(earlier.ResultJson)!;
        return (new Result(job, stored.Accepted, stored.Rejected, stored.Relabelled, Replayed: true), null);
    }

    private async Task<(SamplesResult?, IResult?)?> ReplaySamplesAsync(IdempotencyKey key, string fingerprint, CancellationToken cancellationToken)
    {
        var (earlier, reused) = await FindEarlierAsync(key, SamplesRoute, fingerprint, cancellationToken);
        if (reused is not null) return (null, reused);
        if (earlier is null) return null;
        return (JsonSerializer.Deserialize<SamplesResult>(earlier.ResultJson)! with { Replayed = true }, null);
    }

    private async Task<IResult?> CheckLabelsAsync(IReadOnlyList<string> labels, CancellationToken cancellationToken)
    {
        var valid = await registry.ValidLabelsAsync(cancellationToken);
        var unknown = labels.Where(l => !valid.Contains(l)).Distinct().ToList();
        return unknown.Count == 0 ? null
            : ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_label", $"unknown label(s) {string.Join(", ", unknown.Select(u => $"'{u}'"))}; valid: {string.Join(", ", valid)}");
    }

    private static IResult NoneAccepted(IReadOnlyList<UploadedImage> files, IReadOnlyList<RejectedImage> rejected) =>
        ApiErrors.Result(StatusCodes.Status400BadRequest, rejected[0].Error, $"none of the {files.Count} files was accepted: {rejected[0].Message}");

    /// <summary>
    /// The job is recorded, so it is accepted whatever the broker does: a send that fails or outlasts
    /// <see cref="ClassifyCommandSender.SendTimeout"/> (RabbitMQ down) is left to the trainers' sweeper, which sends
    /// queued jobs whose message never came.
    /// </summary>
    private async Task SendAsync(Guid jobId, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ClassifyCommandSender.SendTimeout);
        try
        {
            var endpoint = await sendEndpoints.GetSendEndpoint(QueueNames.Address(messaging.TrainQueue));
            await endpoint.Send(new TrainModel { TrainingJobId = jobId, QueuedAt = clock.GetUtcNow() }, timeout.Token);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("Training job {TrainingJobId} is queued but its message was not sent ({Reason}); a trainer's sweeper sends it once the broker is back and no other job runs (checked every {Seconds} s)",
                jobId, e.Message, settings.SweepSeconds);
        }
    }

    /// <summary>
    /// One sample per image, the latest label winning, as the README says: in request order, so of the same bytes sent
    /// twice in one request the later file's label is kept (the first one's was). A net change of a label is reported,
    /// once per image: against the label stored before the request or, for an image new to it, the first file's (so
    /// A→B→A is no change).
    /// </summary>
    private async Task<(List<RelabelledSample> Relabelled, Dictionary<Guid, LabelledSample> ByImage)> AddSamplesAsync(
        List<(int Index, StoredImage Image, string Label)> samples, Guid? jobId, DateTime now, CancellationToken cancellationToken)
    {
        var imageIds = samples.Select(s => s.Image.Id).Distinct().ToList();
        var existing = await db.LabelledSamples.Where(s => imageIds.Contains(s.ImageId)).ToDictionaryAsync(s => s.ImageId, cancellationToken);
        // Per image: the label a change is judged against, and the file that gave it (null: the label stored before).
        var before = existing.ToDictionary(e => e.Key, e => (e.Value.Label, Index: (int?)null));
        var stored = existing.Keys.ToHashSet();
        var last = new Dictionary<Guid, int>();
        foreach (var (index, image, label) in samples)
        {
            if (!existing.TryGetValue(image.Id, out var sample))
            {
                db.LabelledSamples.Add(existing[image.Id] = sample = new LabelledSample { Id = Guid.CreateVersion7(), ImageId = image.Id, Label = label, Origin = SampleOrigin.Upload });
                before[image.Id] = (label, index);
            }
            last[image.Id] = index;
            sample.Label = label;
            // POST /v1/samples (no job) changes a stored sample's label only: its origin, job, classification and created_at
            // keep saying where it came from (GET /v1/samples?training_job_id=<job> kept losing it). A training job takes it over.
            if (jobId is null && stored.Contains(image.Id)) continue;
            sample.Origin = SampleOrigin.Upload;
            sample.TrainingJobId = jobId;
            sample.CreatedAt = now;
        }
        var relabelled = last.Where(l => existing[l.Key].Label != before[l.Key].Label).OrderBy(l => l.Value)
            .Select(l => new RelabelledSample(l.Value, before[l.Key].Label, existing[l.Key].Label, before[l.Key].Index))
            .ToList();
        return (relabelled, existing);
    }
}
