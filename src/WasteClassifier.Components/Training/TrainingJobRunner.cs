using System.Text.Json;
using Google.Protobuf;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Evaluation;
using WasteClassifier.Core.Inference;
using WasteClassifier.Core.Training;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Components.Training;

/// <summary>
/// Runs one training job: features (cached by content hash and backbone) → head → candidate and active model scored
/// on the same hold-out → candidate registered → promoted if the gate passes. Progress and a heartbeat go to the
/// job row every few seconds; a cancel request stops the job before anything is registered.
/// </summary>
public sealed class TrainingJobRunner(
    ClassifierDbContext db,
    ModelRegistry registry,
    TrainingDataLoader data,
    TrainingSettings settings,
    ModelOptions modelOptions,
    ServiceOptions service,
    IServiceScopeFactory scopes,
    TimeProvider clock,
    ILogger<TrainingJobRunner> logger)
{
    private static readonly JsonSerializerOptions SnakeCase = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>A cancelled job's error, whoever ended it: one cancelled before it ran had none, one while running said why.</summary>
    public const string CancelledBeforeItStarted = "cancelled on request before it started; the active model is untouched";
    public const string CancelledWhileRunning = "cancelled on request; the active model is untouched";
    public const string CancelledAfterItsTrainerStopped = "cancelled on request; its trainer stopped before it finished, and the active model is untouched";

    private readonly string _trainerId = settings.TrainerId;

    /// <summary>
    /// Runs a job this trainer has claimed (<see cref="ClaimAsync"/>). Returns true when the job ended here (succeeded,
    /// failed or cancelled), so the next due job may be sent; false when it is another trainer's now, or left for a
    /// takeover. Throws <see cref="OperationCanceledException"/> when <paramref name="shutdown"/> stops it, a
    /// <see cref="GivenBackException"/> if it gave the job back.
    /// </summary>
    public async Task<bool> RunAsync(Guid jobId, CancellationToken shutdown)
    {
        // An earlier attempt got past the point of no return: it registered this job's candidate (and perhaps promoted it),
        // then its trainer died or could not write the end. The job is finished from there: trained again, it would judge a
        // second candidate against the first.
        if (await RegisteredCandidateAsync(jobId) is { } earlier) return await ResumeAsync(jobId, earlier);
        // Not cancelled by a shutdown here: one is honoured below, where the job is given back.
        var job = await db.TrainingJobs.AsNoTracking().FirstAsync(j => j.Id == jobId, CancellationToken.None);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(shutdown);
        using var lostJob = new CancellationTokenSource();
        var progress = new TrainingProgress();
        var heartbeat = HeartbeatAsync(jobId, progress, cancel, lostJob);
        try
        {
            var version = await TrainAsync(job, progress, cancel.Token);
            var decision = await CompleteAsync(jobId, version);
            await cancel.CancelAsync();
            await heartbeat;
            await FinishAsync(jobId, TrainingJobStatus.Succeeded, null, new Completion(version, decision));
            logger.LogInformation("Training job {TrainingJobId} registered {ModelVersion}; promoted: {Promoted}", jobId, version, decision.Promote);
            return true;
        }
        catch (OperationCanceledException) when (shutdown.IsCancellationRequested)
        {
            await cancel.CancelAsync();
            await heartbeat;
            // The trainer is stopping: give the job back, and this claim with it. Its message was acknowledged at the claim: the
            // host sends it again (GivenBackException), or else a sweeper does.
            if (await GiveBackAsync(db, jobId, _trainerId) == 1) throw new GivenBackException();
            throw;
        }
        catch (OperationCanceledException e) when (e is TakenOverException || lostJob.IsCancellationRequested)
        {
            // This trainer's heartbeat went stale and another trainer took the job over (or it was ended): the row is not ours.
            await cancel.CancelAsync();
            await heartbeat;
            logger.LogWarning("Training job {TrainingJobId} is no longer this trainer's (its heartbeat went stale, and another trainer took it over or it was ended); this run stops without writing to it", jobId);
            return false;
        }
        catch (OperationCanceledException e) when (cancel.IsCancellationRequested || e is CancelRequestedException)
        {
            await cancel.CancelAsync();
            await heartbeat;
            await FinishAsync(jobId, TrainingJobStatus.Cancelled, CancelledWhileRunning, null);
            logger.LogInformation("Training job {TrainingJobId} cancelled", jobId);
            return true;
        }
        catch (Exception e)
        {
            await cancel.CancelAsync();
            await heartbeat;
            if (await RegisteredCandidateAsync(jobId) is { } registered)
            {
                // Failed, the job would hide a candidate that is registered (perhaps active). Left running, it is taken over
                // once its heartbeat is stale and finished from the candidate (ResumeAttempts claims past Training:MaxAttempts),
                // or else ended from the recorded decision (FailExhaustedAsync), never failed.
                logger.LogError(e, "Training job {TrainingJobId} registered {ModelVersion} but could not finish; it is finished from there once its heartbeat " +
                    "is stale (Training:StaleAfterSeconds)", jobId, registered);
                return false;
            }
            await FinishAsync(jobId, TrainingJobStatus.Failed, e.Message, null);
            logger.LogError(e, "Training job {TrainingJobId} failed", jobId);
            return true;
        }
    }

    /// <summary>A job that registered its candidate: the version, and the promotion decision that stands.</summary>
    private sealed record Completion(string CandidateVersion, PromotionDecision Decision);

    /// <summary>
    /// What a job was judged on, recorded as it enters the registering step: the model its candidate was compared with, both
    /// hold-out reports, the gate's decision and the data counts (JSON as the job's columns hold them).
    /// </summary>
    internal sealed record Judgement(string? BaselineVersion, string CandidateMetricsJson, string? BaselineMetricsJson, string DecisionJson, string DataCountsJson);

    /// <summary>
    /// The job's <c>data_counts</c>: images trained on per label, hold-out images, the images left out as unreadable, and the
    /// hold-out's trusted images that a labelled sample labels otherwise (scored with the trusted label).
    /// </summary>
    /// <remarks>
    /// <c>HoldOutNotScored</c>: images of the job's own data (a base dataset other than the evaluation one) that fall in the
    /// hold-out fifth, so are neither trained on nor scored; without it they were left out silently.
    /// </remarks>
    private sealed record DataCounts(IReadOnlyDictionary<string, int> Training, int HoldOut, IReadOnlyList<UnreadableImage> Unreadable, int HoldOutLabelConflicts,
        int HoldOutNotScored);

    /// <summary>The images of <paramref name="data"/> in the hold-out split that <paramref name="holdOut"/> does not score.</summary>
    internal static int HoldOutNotScored(IEnumerable<LabelledImage> data, IReadOnlyList<LabelledImage> holdOut)
    {
        var scored = holdOut.Select(i => Convert.ToHexString(i.Sha256)).ToHashSet();
        return data.Count(i => HoldOutSplit.IsHoldOut(i.Sha256) && !scored.Contains(Convert.ToHexString(i.Sha256)));
    }

    /// <summary>Trains, judges and registers the job's candidate; returns its version.</summary>
    private async Task<string> TrainAsync(TrainingJob job, TrainingProgress progress, CancellationToken cancellationToken)
    {
        var options = TrainingJobOptions.FromJson(job.OptionsJson);
        var active = await registry.GetActiveAsync(cancellationToken);
        var activeCard = active is null ? null : ModelRegistry.ReadCard(active);
        // The labels the API accepts (ValidLabelsAsync): a class the active model lacks (an imported model without
        // vegetation, say) is learned, rather than its samples dropped and its base images failing every job.
        var labels = ModelRegistry.WithProductClasses(activeCard);
        var backbone = BackboneDefinition.All.FirstOrDefault(b => b.Id == activeCard?.Backbone) ?? BackboneDefinition.ResNet18MultiScale;
        var inference = modelOptions.ToSequentialInferenceOptions();

        var (images, (holdOut, labelConflicts)) = await data.LoadJobAsync(options, labels, cancellationToken);
        var training = images.Where(i => !HoldOutSplit.IsHoldOut(i.Sha256)).ToList();
        if (labelConflicts > 0)
            logger.LogWarning("Training job {TrainingJobId}: {Count} labelled sample(s) label a trusted hold-out image otherwise; scored with the trusted label",
                job.Id, labelConflicts);
        RequireTwoLabels(training.Select(i => i.Label).ToList());
        logger.LogInformation("Training job {TrainingJobId}: {Training} training and {HoldOut} hold-out images", job.Id, training.Count, holdOut.Count);
        if (HoldOutNotScored(images, holdOut) is > 0 and var unused)
            logger.LogWarning("Training job {TrainingJobId}: {Count} image(s) of its base dataset fall in the hold-out split but not in the evaluation " +
                "dataset's: neither trained on nor scored", job.Id, unused);

        var views = FeatureView.ForAugmentation("flip");
        var (features, unreadable) = await Task.Run(() =>
        {
            using var extractor = FeatureExtractor.Create(backbone, inference);
            var cache = new FeatureCache(settings.CacheDirectory ?? Path.Combine(service.ResolvedDataDirectory, "feature-cache"), backbone.Id, backbone.FeatureWidth);
            var runner = new FeatureExtractionRunner(extractor, cache, m => logger.LogDebug("{Message}", m));
            var samples = runner.Run(training, views, done => progress.Report(TrainingStages.Features, done * 100), cancellationToken);
            return (samples, runner.Unreadable);
        }, cancellationToken);
        // A labelled image that will not decode (it passed the upload's header check) is left out and named in the job,
        // rather than failing this job and every later one that includes it.
        foreach (var image in unreadable)
            logger.LogWarning("Training job {TrainingJobId}: left out {Path}, which would not decode: {Reason}", job.Id, image.Path, image.Reason);
        RequireTwoLabels(features.Select(f => f.Label).ToList());
        var counts = new DataCounts(labels.ToDictionary(l => l, l => features.Count(f => labels[f.Label] == l)), holdOut.Count, unreadable, labelConflicts,
            HoldOutNotScored(images, holdOut));

        var fingerprint = TrainingDataFingerprint.Of(features.Select(f => (f.Sha256, labels[f.Label])));

        var head = new HeadTrainingOptions { Epochs = options.Epochs ?? TrainingJobOptions.DefaultEpochs, Seed = options.Seed ?? TrainingJobOptions.DefaultSeed };
        var rows = features.SelectMany(s => views.Select(v => new LabelledFeatures(s.Views[v.Name], s.Label))).ToList();
        var model = await Task.Run(() => HeadTrainer.Train(rows, labels.Count, head, null,
            (epoch, epochs) => progress.Report(TrainingStages.Fitting, 100.0 * epoch / epochs), cancellationToken), cancellationToken);

        progress.Report(TrainingStages.Evaluating, 0);
        var version = $"{backbone.Id}-job-{clock.GetUtcNow():yyyyMMddHHmmss}-{job.Id.ToString("N")[^8..]}";
        var headBytes = HeadOnnxExporter.ToOnnx(model).ToByteArray();
        var card = new ModelCard
        {
            Version = version,
            Description = $"{backbone.Id} features → {head.HeadType} head, training job {job.Id}",
            Labels = labels,
            Input = backbone.Input,
            Backbone = backbone.Id,
            Head = TrainedModelWriter.HeadFileName,
            ParentVersion = active?.Version,
            CreatedAt = clock.GetUtcNow(),
            Training = JsonSerializer.SerializeToElement(new
            {
                TrainingJobId = job.Id,
                BaseDataset = options.BaseDataset,
                options.IncludeFeedback,
                ImagesPerLabel = counts.Training,
                DataFingerprint = fingerprint,
                HoldOutImages = holdOut.Count,
                Split = $"hold-out: first 4 bytes of the image's SHA-256 (big-endian) mod {HoldOutSplit.Buckets} == 0, never trained on",
                Augmentation = "flip",
                Hyperparameters = head,
            }, ModelCard.JsonOptions),
        };
        var candidateReport = await EvaluateCandidateAsync(card, headBytes, holdOut, labels, cancellationToken);
        progress.Report(TrainingStages.Evaluating, 50);
        var baselineReport = active is null ? null : await EvaluateActiveAsync(active, holdOut, labels, cancellationToken);
        var decision = holdOut.Count == 0
            ? new PromotionDecision(false, ["no hold-out images: the candidate cannot be compared, so it stays a candidate"])
            : PromotionGate.Decide(candidateReport, baselineReport, settings, options.Promote, PromotionGate.SameTrainingData(activeCard?.Training, counts.Training, fingerprint));

        progress.Report(TrainingStages.Registering, 0);
        cancellationToken.ThrowIfCancellationRequested();
        // The point of no return. The heartbeat sees a cancel request only every few seconds (later still when the process is
        // busy), so the request is read once more, in the statement that marks the job as registering; from then on the API
        // answers a cancel request with 409, and the job ends as it would have without one. The same statement records the
        // judgement, so a trainer that finishes the job from its registered candidate finds the decision to carry out.
        var judgement = new Judgement(active?.Version, candidateReport.ToJson(), baselineReport?.ToJson(), DecisionJson(decision),
            JsonSerializer.Serialize(counts, SnakeCase));
        if (!await EnterRegisteringAsync(db, job.Id, _trainerId, judgement))
            throw await db.TrainingJobs.AnyAsync(j => j.Id == job.Id && j.TrainerId == _trainerId && j.Status == TrainingJobStatus.Running, CancellationToken.None)
                ? new CancelRequestedException() : new TakenOverException();
        var metrics = TrainedModelWriter.Metrics(candidateReport, "holdout", "end to end on the training job's hold-out");
        card = card with { Metrics = metrics };
        if (!await RegisterCandidateAsync(registry, job.Id, _trainerId, job.Attempts, card,
                new Dictionary<string, byte[]> { [TrainedModelWriter.HeadFileName] = headBytes }, metrics.GetRawText(), clock))
            throw new TakenOverException();
        return version;
    }

    /// <summary>
    /// Registers the job's candidate and names it on the job, in one transaction, only while the job still runs on this claim
    /// (<paramref name="trainerId"/>, attempt <paramref name="attempt"/>); false, with nothing recorded and the uploaded files
    /// deleted, otherwise. A trainer that stalled while uploading (its heartbeat stale) may have been taken over by one that
    /// trains again: registering as well, it left the job with two candidates, and the earlier one would be resumed. The
    /// update also stores a heartbeat, so a claim waiting on the row finds the job live once it is registered.
    /// </summary>
    internal static async Task<bool> RegisterCandidateAsync(ModelRegistry registry, Guid jobId, string trainerId, int attempt, ModelCard card,
        IReadOnlyDictionary<string, byte[]> files, string metricsJson, TimeProvider clock) =>
        await registry.RegisterFencedAsync(card, files, "trained", jobId, metricsJson, ModelStatus.Candidate, async context =>
        {
            // Read in the fence, after the upload: a time read before it would set the heartbeat back by the upload's length,
            // and a claim or sweeper blocked on the row would still find it stale once this commits.
            var now = clock.GetUtcNow().UtcDateTime;
            return await context.TrainingJobs.Where(j => j.Id == jobId && j.TrainerId == trainerId && j.Attempts == attempt && j.Status == TrainingJobStatus.Running)
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.CandidateVersion, card.Version).SetProperty(j => j.HeartbeatAt, now), CancellationToken.None) == 1;
        }, CancellationToken.None) is not null;

    /// <summary>
    /// From a registered candidate to the decision that stands: names the candidate on the job, then promotes it if the
    /// recorded decision says so and it was never promoted (an earlier attempt may have; an operator's rollback since stands).
    /// </summary>
    private async Task<PromotionDecision> CompleteAsync(Guid jobId, string version)
    {
        if (await db.TrainingJobs.Where(j => j.Id == jobId && j.TrainerId == _trainerId && j.Status == TrainingJobStatus.Running)
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.CandidateVersion, version), CancellationToken.None) == 0)
            throw new TakenOverException();
        var recorded = await db.TrainingJobs.AsNoTracking().Where(j => j.Id == jobId)
            .Select(j => new { j.DecisionJson, j.BaselineVersion }).FirstAsync(CancellationToken.None);
        if (ReadDecision(recorded.DecisionJson) is not { } decision)
            return new PromotionDecision(false, ["the gate's decision was not recorded with the candidate, so it stays a candidate"]);
        if (!decision.Promote) return decision;
        // The gate compared the candidate with the model active when the job began; if an operator promoted or rolled
        // back to another meanwhile, that choice stands and the candidate stays a candidate. A candidate promoted before (by
        // an earlier attempt) counts as promoted and is not promoted again: that check is made under the promotion lock.
        return await registry.PromoteReplacingAsync(version, recorded.BaselineVersion, CancellationToken.None)
            ? decision
            : new PromotionDecision(false, [.. decision.Reasons,
                $"not promoted: the active model changed from {recorded.BaselineVersion ?? "none"} while the job ran, and the candidate was not compared with the new one"]);
    }

    /// <summary>Finishes a job whose candidate an earlier attempt registered, without training again; true when it ended.</summary>
    private async Task<bool> ResumeAsync(Guid jobId, string version)
    {
        logger.LogInformation("Training job {TrainingJobId} registered {ModelVersion} in an earlier attempt; finishing it from there", jobId, version);
        // Registering (the claim kept the stage), so the API refuses cancel requests. 0 rows: the job is no longer this trainer's.
        if (await db.TrainingJobs.Where(j => j.Id == jobId && j.TrainerId == _trainerId && j.Status == TrainingJobStatus.Running)
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.Stage, TrainingStages.Registering).SetProperty(j => j.Percent, 0), CancellationToken.None) == 0)
        {
            logger.LogWarning("Training job {TrainingJobId} is no longer this trainer's; this run stops without writing to it", jobId);
            return false;
        }
        try
        {
            var decision = await CompleteAsync(jobId, version);
            await FinishAsync(jobId, TrainingJobStatus.Succeeded, null, new Completion(version, decision));
            logger.LogInformation("Training job {TrainingJobId} finished with {ModelVersion}; promoted: {Promoted}", jobId, version, decision.Promote);
            return true;
        }
        catch (TakenOverException)
        {
            logger.LogWarning("Training job {TrainingJobId} is no longer this trainer's; this run stops without writing to it", jobId);
            return false;
        }
        catch (Exception e)
        {
            logger.LogError(e, "Training job {TrainingJobId} registered {ModelVersion} but could not finish; it is finished from there once its heartbeat " +
                "is stale (Training:StaleAfterSeconds)", jobId, version);
            return false;
        }
    }

    /// <summary>The version of the candidate this job registered, if it got that far.</summary>
    private Task<string?> RegisteredCandidateAsync(Guid jobId) =>
        db.Models.AsNoTracking().Where(m => m.TrainingJobId == jobId).OrderBy(m => m.CreatedAt).Select(m => m.Version).FirstOrDefaultAsync(CancellationToken.None);

    private static string DecisionJson(PromotionDecision decision) => decision.ToJson();

    private static PromotionDecision? ReadDecision(string? json) => PromotionDecision.FromJson(json);

    private static void RequireTwoLabels(IReadOnlyList<int> trainingLabels)
    {
        if (trainingLabels.Distinct().Count() < 2)
            throw new InvalidDataException($"not enough labelled data: {trainingLabels.Count} readable training image(s) over fewer than two labels");
    }

    private async Task<ClassificationReport> EvaluateCandidateAsync(ModelCard card, byte[] headBytes, IReadOnlyList<LabelledImage> holdOut,
        IReadOnlyList<string> labels, CancellationToken cancellationToken)
    {
        var directory = Path.Combine(service.ResolvedDataDirectory, "training", card.Version);
        Directory.CreateDirectory(directory);
        await File.WriteAllBytesAsync(Path.Combine(directory, TrainedModelWriter.HeadFileName), headBytes, cancellationToken);
        TrainedModelWriter.SaveCard(directory, card);
        try
        {
            return await Task.Run(() =>
            {
                using var classifier = ModelLoader.Load(directory, modelOptions.ToSequentialInferenceOptions());
                return ImageSetEvaluator.Evaluate(classifier, holdOut, labels, m => logger.LogInformation("{Message}", m), cancellationToken);
            }, cancellationToken);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private async Task<ClassificationReport> EvaluateActiveAsync(ModelRecord active, IReadOnlyList<LabelledImage> holdOut, IReadOnlyList<string> labels,
        CancellationToken cancellationToken)
    {
        var directory = await registry.DownloadAsync(active, Path.Combine(service.ResolvedDataDirectory, "model-cache"), cancellationToken);
        return await Task.Run(() =>
        {
            using var classifier = ModelLoader.Load(directory, modelOptions.ToSequentialInferenceOptions());
            return ImageSetEvaluator.Evaluate(classifier, holdOut, labels, m => logger.LogInformation("{Message}", m), cancellationToken);
        }, cancellationToken);
    }

    /// <summary>
    /// Takes a queued job (or one whose trainer died, fewer than <c>Training:MaxAttempts</c> times) unless another job is
    /// running somewhere. A message for a job that needs nothing more (finished, running with a live trainer, cancelled), or
    /// that must wait behind another job, is answered and dropped: the trainer whose job ends sends the next one, and the
    /// <see cref="TrainingJobSweeper"/> sends a job again whenever it is due and its message is gone. A job whose trainers
    /// stopped <c>Training:MaxAttempts</c> times is failed instead.
    /// </summary>
    public async Task<bool> ClaimAsync(Guid jobId, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var staleBefore = now.AddSeconds(-settings.StaleAfterSeconds);
        if (await TryClaimAsync(db, jobId, _trainerId, now, staleBefore, settings.MaxAttempts, cancellationToken) == 1) return true;

        var job = await db.TrainingJobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == jobId, cancellationToken);
        var trainerAlive = job is { Status: TrainingJobStatus.Running } && job.HeartbeatAt >= staleBefore;
        if (job is null || TrainingJobStatus.IsFinal(job.Status) || trainerAlive)
        {
            // A duplicate message (re-sent by a sweeper, redelivered by the broker): the job's own trainer has it.
            logger.LogInformation("Training job {TrainingJobId} is {Status}{Trainer}; nothing to run", jobId, job?.Status ?? "unknown",
                trainerAlive ? $" on {job!.TrainerId}" : "");
            return false;
        }
        if (job.CancelRequested)
        {
            if (await CancelAbandonedAsync(db, jobId, staleBefore, now) == 1) logger.LogInformation("Training job {TrainingJobId} cancelled before it ran (again)", jobId);
            return false;
        }
        if (job.Status == TrainingJobStatus.Running && job.Attempts >= settings.MaxAttempts)
        {
            // A message for a job whose trainers kept stopping (redelivered by the broker when the last one died).
            if (await FailExhaustedAsync(db, jobId, staleBefore, settings.MaxAttempts, now) == 1)
                logger.LogWarning("Training job {TrainingJobId} ended (failed, or from its registered candidate): its trainer stopped {Attempts} times without finishing; last trainer {TrainerId}",
                    jobId, job.Attempts, job.TrainerId);
            return false;
        }
        // Another job runs. Acknowledged rather than retried: the job row, not this message, records that it must run.
        var running = await db.TrainingJobs.AsNoTracking().Where(j => j.Status == TrainingJobStatus.Running && j.HeartbeatAt >= staleBefore)
            .Select(j => new { j.Id, j.TrainerId }).FirstOrDefaultAsync(cancellationToken);
        logger.LogInformation("Training job {TrainingJobId} waits: job {RunningJobId} is running on {TrainerId}; the trainer whose job ends sends it (or the sweeper)",
            jobId, running?.Id, running?.TrainerId);
        return false;
    }

    /// <summary>
    /// A trainer that is stopping gives its running job back (queued again), and its claim with it: the job did not stop
    /// that trainer, so a graceful stop (a deployment's rolling restart) counts against no <c>Training:MaxAttempts</c>.
    /// </summary>
    internal static Task<int> GiveBackAsync(ClassifierDbContext context, Guid jobId, string trainerId) =>
        context.TrainingJobs.Where(j => j.Id == jobId && j.TrainerId == trainerId && j.Status == TrainingJobStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, TrainingJobStatus.Queued).SetProperty(j => j.HeartbeatAt, (DateTime?)null)
                // A queued job runs no stage, nor has it started: the next claim starts it again from features. Registering
                // is kept, should a job ever be given back from there: the next claim resumes a registered candidate by that
                // mark. Its start is not: every claim sets started_at anew.
                .SetProperty(j => j.Stage, j => j.Stage == TrainingStages.Registering ? j.Stage : null)
                .SetProperty(j => j.Percent, j => j.Stage == TrainingStages.Registering ? j.Percent : 0)
                .SetProperty(j => j.StartedAt, (DateTime?)null)
                // Never below 0: a job claimed before attempts were counted holds none.
                .SetProperty(j => j.Attempts, j => j.Attempts > 0 ? j.Attempts - 1 : 0), CancellationToken.None);

    /// <summary>
    /// Claims past <c>Training:MaxAttempts</c> that a job whose candidate is registered may take to be finished from it: a
    /// resume trains nothing, so a job that killed its trainers while training does not get them, and the bound keeps a
    /// resume that keeps failing from being sent for ever.
    /// </summary>
    internal const int ResumeAttempts = 3;

    /// <summary>
    /// The claim: marks the job running on <paramref name="trainerId"/>, one more attempt, if it is queued, or running with a
    /// heartbeat older than <paramref name="staleBefore"/> and claimed fewer than <paramref name="maxAttempts"/> times (or,
    /// its candidate registered, <see cref="ResumeAttempts"/> more), and no other job runs with a fresh heartbeat. Returns
    /// the rows changed (1: claimed).
    /// </summary>
    internal static Task<int> TryClaimAsync(ClassifierDbContext db, Guid jobId, string trainerId, DateTime now, DateTime staleBefore, int maxAttempts,
        CancellationToken cancellationToken) =>
        db.Database.CreateExecutionStrategy().ExecuteAsync(async () =>
        {
            var resumeLimit = maxAttempts + ResumeAttempts;
            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            // "No other job running" is read from other rows than the one written: without the lock two trainers
            // claiming two jobs at the same moment would both see none.
            await ClusterLocks.TakeAsync(db, ClusterLocks.TrainingJobClaims, cancellationToken);
            var rows = await db.TrainingJobs
                .Where(j => j.Id == jobId && !j.CancelRequested
                    && (j.Status == TrainingJobStatus.Queued
                        || (j.Status == TrainingJobStatus.Running && j.HeartbeatAt < staleBefore
                            && (j.Attempts < maxAttempts || (j.Attempts < resumeLimit && db.Models.Any(m => m.TrainingJobId == j.Id))))))
                .Where(j => !db.TrainingJobs.Any(o => o.Id != jobId && o.Status == TrainingJobStatus.Running && o.HeartbeatAt >= staleBefore))
                .ExecuteUpdateAsync(s => s
                    .SetProperty(j => j.Status, TrainingJobStatus.Running)
                    .SetProperty(j => j.StartedAt, now)
                    .SetProperty(j => j.HeartbeatAt, now)
                    .SetProperty(j => j.TrainerId, trainerId)
                    // A job whose candidate is registered stays registering, to be resumed: set back to features, it would have the
                    // API accept a cancel request until the resume marks it again, and a cancel the job never honours.
                    .SetProperty(j => j.Stage, j => j.Stage == TrainingStages.Registering && db.Models.Any(m => m.TrainingJobId == j.Id)
                        ? TrainingStages.Registering : TrainingStages.Features)
                    .SetProperty(j => j.Percent, 0)
                    .SetProperty(j => j.Attempts, j => j.Attempts + 1), cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            return rows;
        });

    /// <summary>
    /// Fails a job whose trainer stopped beating (out of memory, a crash) after it had been claimed
    /// <paramref name="maxAttempts"/> times, rather than have it taken over once more: a job that kills its trainer would
    /// otherwise be sent again for ever. A job whose candidate is registered is not failed (its model may be active): after
    /// <see cref="ResumeAttempts"/> more claims it ends succeeded from the decision recorded with it, saying so where the
    /// promotion it decided was not carried out. A cancel request is left to <see cref="CancelAbandonedAsync"/>. Records
    /// each ended job's duration, as a job that ends in its runner does. Returns the rows changed.
    /// </summary>
    public static async Task<int> FailExhaustedAsync(ClassifierDbContext context, Guid? jobId, DateTime staleBefore, int maxAttempts, DateTime now)
    {
        var exhausted = await Exhausted(context, jobId, staleBefore, maxAttempts)
            .Select(j => new
            {
                j.Id,
                j.StartedAt,
                j.CreatedAt,
                j.Attempts,
                j.DecisionJson,
                Candidate = context.Models.Where(m => m.TrainingJobId == j.Id).OrderBy(m => m.CreatedAt).Select(m => new { m.Version, m.PromotedAt }).FirstOrDefault(),
            }).ToListAsync(CancellationToken.None);
        var failed = 0;
        foreach (var job in exhausted)
        {
            if (job.Candidate is { } candidate)
            {
                var recorded = ReadDecision(job.DecisionJson)
                    ?? new PromotionDecision(false, ["the gate's decision was not recorded with the candidate, so it stays a candidate"]);
                var decision = recorded.Promote && candidate.PromotedAt is null
                    ? new PromotionDecision(false, [.. recorded.Reasons, $"not promoted: its trainers stopped {job.Attempts} times after registering the candidate, " +
                        $"before promoting it; POST /v1/models/{candidate.Version}/promote promotes it"])
                    : recorded;
                if (await Exhausted(context, job.Id, staleBefore, maxAttempts).ExecuteUpdateAsync(s => s
                        .SetProperty(j => j.Status, TrainingJobStatus.Succeeded)
                        .SetProperty(j => j.CandidateVersion, candidate.Version)
                        .SetProperty(j => j.DecisionJson, DecisionJson(decision))
                        .SetProperty(j => j.Stage, (string?)null)
                        .SetProperty(j => j.Percent, 100)
                        .SetProperty(j => j.FinishedAt, now), CancellationToken.None) == 0) continue;
                failed++;
                Observability.ClassifierMetrics.TrainingJobFinished(TrainingJobStatus.Succeeded, job.StartedAt ?? job.CreatedAt, now);
                continue;
            }
            // One row at a time, under the same conditions: of two trainers failing the job at once (sweepers, a claim), only
            // the one whose update changes it records its duration.
            if (await Exhausted(context, job.Id, staleBefore, maxAttempts).ExecuteUpdateAsync(s => s
                    .SetProperty(j => j.Status, TrainingJobStatus.Failed)
                    .SetProperty(j => j.Error, j => "its trainer stopped " + j.Attempts.ToString() + " times without finishing (Training:MaxAttempts is "
                        + maxAttempts.ToString() + "); last trainer " + (j.TrainerId ?? "unknown") + "; not tried again")
                    .SetProperty(j => j.Stage, (string?)null)
                    .SetProperty(j => j.FinishedAt, now), CancellationToken.None) == 0) continue;
            failed++;
            Observability.ClassifierMetrics.TrainingJobFinished(TrainingJobStatus.Failed, job.StartedAt ?? job.CreatedAt, now);
        }
        return failed;
    }

    private static IQueryable<TrainingJob> Exhausted(ClassifierDbContext context, Guid? jobId, DateTime staleBefore, int maxAttempts) =>
        context.TrainingJobs.Where(j => (jobId == null || j.Id == jobId) && !j.CancelRequested
            && j.Status == TrainingJobStatus.Running && j.HeartbeatAt < staleBefore && j.Attempts >= maxAttempts
            // A registered candidate is resumed, not failed, for ResumeAttempts more claims.
            && (j.Attempts >= maxAttempts + ResumeAttempts || !context.Models.Any(m => m.TrainingJobId == j.Id)));

    /// <summary>
    /// Ends a job whose cancel request no trainer will honour: still queued, or running with a trainer that stopped
    /// beating. Records the duration of each that had started, as a job cancelled in its runner does. Returns the rows
    /// changed (0 when a live trainer holds the job, or it already ended).
    /// </summary>
    public static async Task<int> CancelAbandonedAsync(ClassifierDbContext context, Guid? jobId, DateTime staleBefore, DateTime now)
    {
        var abandoned = await Abandoned(context, jobId, staleBefore).Select(j => new { j.Id, j.Status, j.StartedAt }).ToListAsync(CancellationToken.None);
        var cancelled = 0;
        foreach (var job in abandoned)
        {
            // One row at a time, under the same conditions, as in FailExhaustedAsync: only the update that ends the job records it.
            if (await Abandoned(context, job.Id, staleBefore).ExecuteUpdateAsync(s => s
                    .SetProperty(j => j.Status, TrainingJobStatus.Cancelled)
                    .SetProperty(j => j.Error, j => j.Status == TrainingJobStatus.Queued ? CancelledBeforeItStarted : CancelledAfterItsTrainerStopped)
                    .SetProperty(j => j.Stage, (string?)null)
                    .SetProperty(j => j.FinishedAt, now), CancellationToken.None) == 0) continue;
            cancelled++;
            // A queued job has no duration, even one a stopping trainer gave back after it had started.
            if (job.Status == TrainingJobStatus.Running)
                Observability.ClassifierMetrics.TrainingJobFinished(TrainingJobStatus.Cancelled, job.StartedAt, now);
        }
        return cancelled;
    }

    private static IQueryable<TrainingJob> Abandoned(ClassifierDbContext context, Guid? jobId, DateTime staleBefore) =>
        context.TrainingJobs.Where(j => (jobId == null || j.Id == jobId) && j.CancelRequested
            && (j.Status == TrainingJobStatus.Queued || (j.Status == TrainingJobStatus.Running && j.HeartbeatAt < staleBefore)));

    /// <summary>The trainer is stopping, and this run gave its job back (queued again).</summary>
    internal sealed class GivenBackException : OperationCanceledException;

    /// <summary>A cancel request found by the runner itself rather than by the heartbeat.</summary>
    private sealed class CancelRequestedException : OperationCanceledException;

    /// <summary>The job row names another trainer: this one's heartbeat went stale and the job was taken over.</summary>
    private sealed class TakenOverException : OperationCanceledException;

    /// <summary>
    /// Marks the job as registering while it still runs on <paramref name="trainerId"/> without a cancel request; false
    /// otherwise. Running, not only named: a job failed after <c>Training:MaxAttempts</c> keeps its last trainer's name, and
    /// that trainer, frozen rather than dead, must not register (or promote) a candidate for a job that has ended.
    /// </summary>
    internal static async Task<bool> EnterRegisteringAsync(ClassifierDbContext context, Guid jobId, string trainerId, Judgement judgement) =>
        await context.TrainingJobs.Where(j => j.Id == jobId && j.Status == TrainingJobStatus.Running && !j.CancelRequested && j.TrainerId == trainerId)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.Stage, TrainingStages.Registering).SetProperty(j => j.Percent, 0)
                .SetProperty(j => j.BaselineVersion, judgement.BaselineVersion)
                .SetProperty(j => j.CandidateMetricsJson, judgement.CandidateMetricsJson)
                .SetProperty(j => j.BaselineMetricsJson, judgement.BaselineMetricsJson)
                .SetProperty(j => j.DecisionJson, judgement.DecisionJson)
                .SetProperty(j => j.DataCountsJson, judgement.DataCountsJson), CancellationToken.None) == 1;

    /// <summary>Every few seconds: store progress and the heartbeat, and turn a cancel request into cancellation.</summary>
    private async Task HeartbeatAsync(Guid jobId, TrainingProgress progress, CancellationTokenSource cancel, CancellationTokenSource lostJob)
    {
        while (!cancel.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(settings.HeartbeatSeconds), cancel.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            try
            {
                using var scope = scopes.CreateScope();
                var context = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
                var (stage, percent) = progress.Read();
                if (await StoreHeartbeatAsync(context, jobId, _trainerId, stage, percent, clock.GetUtcNow().UtcDateTime) == 0)
                {
                    await lostJob.CancelAsync();
                    await cancel.CancelAsync();
                    return;
                }
                if (await context.TrainingJobs.AnyAsync(j => j.Id == jobId && j.CancelRequested, CancellationToken.None)) await cancel.CancelAsync();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning("Training job {TrainingJobId}: heartbeat failed: {Reason}", jobId, e.Message);
            }
        }
    }

    /// <summary>
    /// Stores the heartbeat and the progress read just before, while the job is still running on
    /// <paramref name="trainerId"/> (0 rows: it was taken over or ended). A job marked as registering keeps that stage: the
    /// progress may have been read before the job entered it, and the API refuses cancel requests by that mark alone, so
    /// writing an earlier stage back would let it accept a request the job will never honour.
    /// </summary>
    internal static Task<int> StoreHeartbeatAsync(ClassifierDbContext context, Guid jobId, string trainerId, string stage, double percent, DateTime now) =>
        context.TrainingJobs.Where(j => j.Id == jobId && j.Status == TrainingJobStatus.Running && j.TrainerId == trainerId)
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.Stage, j => j.Stage == TrainingStages.Registering ? j.Stage : stage)
                .SetProperty(j => j.Percent, j => j.Stage == TrainingStages.Registering ? j.Percent : percent)
                .SetProperty(j => j.HeartbeatAt, now), CancellationToken.None);

    private async Task FinishAsync(Guid jobId, string status, string? error, Completion? completion)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        db.ChangeTracker.Clear();
        var job = await db.TrainingJobs.FirstAsync(j => j.Id == jobId);
        if (job.TrainerId != _trainerId || TrainingJobStatus.IsFinal(job.Status))
        {
            // Taken over by another trainer, or ended (cancelled as abandoned) while this one's heartbeat was stale.
            logger.LogWarning("Training job {TrainingJobId} is now {Status} on {TrainerId}; this trainer's outcome ({Outcome}) is not written", jobId, job.Status, job.TrainerId, status);
            return;
        }
        job.Status = status;
        job.Error = error;
        job.FinishedAt = now;
        job.HeartbeatAt = now;
        if (completion is not null)
        {
            job.Stage = null;
            job.Percent = 100;
            job.CandidateVersion = completion.CandidateVersion;
            job.DecisionJson = DecisionJson(completion.Decision);
        }
        else if (job.CandidateVersion is null)
        {
            // Ended before a candidate was registered: a judgement recorded on the way (this attempt's or, taken over, an
            // earlier one's) decided nothing.
            job.BaselineVersion = null;
            job.CandidateMetricsJson = null;
            job.BaselineMetricsJson = null;
            job.DecisionJson = null;
            job.DataCountsJson = null;
        }
        await db.SaveChangesAsync();
        Observability.ClassifierMetrics.TrainingJobFinished(status, job.StartedAt, now);
    }

}
