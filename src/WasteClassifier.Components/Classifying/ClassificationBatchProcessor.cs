using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using WasteClassifier.Components.Models;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Components.Classifying;

/// <summary>
/// Classifies one batch: marks rows processing, takes images from their messages or fetches them concurrently, decodes them in parallel,
/// runs ONE inference call, and writes every result in one SaveChanges. A bad image, or one the object store refuses for
/// good, fails its own row only; a row claimed again meanwhile (a duplicate delivery) keeps the later claim's result. Rows
/// claimed often without a result (their batches probably stopped the worker) are classified alone, after the rest is saved.
/// </summary>
public sealed class ClassificationBatchProcessor(
    ClassifierDbContext db,
    IObjectStore store,
    IModelProvider models,
    WorkerOptions options,
    BatchTensorPool tensors,
    ModelLanes lanes,
    AccessProbeKeys probes,
    TimeProvider clock,
    ILogger<ClassificationBatchProcessor> logger)
{
    public const string MissingImage = "image_missing";
    public const string SizeMismatch = "image_size_mismatch";
    public const string UnreadableImage = "image_unreadable";
    public const string ModelOutputInvalid = "model_output_invalid";

    // Reads of an object whose length differs from the accepted upload's, before the image is failed.
    private const int FetchAttempts = 3;
    private static readonly TimeSpan RefetchDelay = TimeSpan.FromMilliseconds(100);

    // Claims after which a row without a result is a suspect (see ClassifySuspectsApartAsync): a first claim, and one retry
    // or duplicate delivery, are ordinary.
    private const int SuspectAfterClaims = 2;

    public async Task<BatchOutcome> ProcessAsync(IReadOnlyList<ClassifyImage> messages, CancellationToken cancellationToken)
    {
        // The model before the claim: a worker that has none (it cannot load the active version) claims nothing, so it
        // neither counts an attempt against the rows nor holds them, and their messages go back to the queue.
        using var lease = await AcquireModelAsync(messages, cancellationToken);
        // Phase timings go into the batch's log line: where a slow batch spends its time.
        var phase = Stopwatch.StartNew();
        var claimed = await ClaimRowsAsync(messages, cancellationToken);
        if (claimed.Count == 0) return new BatchOutcome(0, 0, 0);
        var claimMs = phase.Elapsed.TotalMilliseconds;

        // Rows claimed too often were failed by the claim itself: no image is read for them.
        var rows = claimed.Where(r => r.Status == ClassificationStatus.Processing).ToList();
        if (rows.Count < claimed.Count)
        {
            var now = clock.GetUtcNow().UtcDateTime;
            foreach (var row in claimed.Where(r => r.Status != ClassificationStatus.Processing)) GaveUp(row, now);
            if (rows.Count == 0) return await SaveAsync(claimed, cancellationToken);
        }

        var carried = CarriedImages(messages);
        try
        {
            // The normal case: no suspect, the whole batch in one pass (one Run, one save).
            return rows.Exists(IsSuspect)
                ? await ClassifySuspectsApartAsync(claimed, rows, lease.Classifier, carried, phase, claimMs, cancellationToken)
                : await ClassifyAsync(claimed, rows, lease.Classifier, carried, carried.Count, phase, claimMs, cancellationToken);
        }
        catch (WorkerFaultException fault)
        {
            await ReleaseClaimAsync(claimed);
            // Only the rows released go round again. The rest are final (skipped by the claim, failed by it, saved by an
            // earlier pass) or gone: their messages are acknowledged, as a batch that succeeds does.
            fault.Settled = messages.Select(m => m.ClassificationId)
                .Except(claimed.Where(r => r.Status == ClassificationStatus.Queued).Select(r => r.Id)).ToHashSet();
            // Of those, the rows this batch made final, to be announced: not one a later claim superseded (its result
            // dropped, the entity detached by the save), whose claim announces it.
            fault.Finished = claimed.Where(r => ClassificationStatus.IsFinal(r.Status) && db.Entry(r).State != EntityState.Detached).Select(r => r.Id).ToList();
            throw;
        }
    }

    private async Task<ModelLease> AcquireModelAsync(IReadOnlyList<ClassifyImage> messages, CancellationToken cancellationToken)
    {
        try
        {
            return await models.AcquireAsync(cancellationToken);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new WorkerFaultException($"this worker has no model to classify with: {e.Message}", e)
            {
                Settled = await StampSentBackAsync(messages, cancellationToken),
            };
        }
    }

    /// <summary>
    /// No model, so nothing claimed: stamps the batch's queued rows as sent now, as their messages go back to the queue,
    /// and returns the ids whose rows are final or gone, whose messages are acknowledged instead. Unstamped, a row going
    /// round was sent again by the re-publisher every StuckAfterSeconds, a copy with a send-back count of 0, so under a
    /// backlog the send-back limit was never reached and the queue grew. One query and one update per faulted batch; when
    /// they fail, every message goes back unstamped.
    /// </summary>
    private async Task<IReadOnlySet<Guid>> StampSentBackAsync(IReadOnlyList<ClassifyImage> messages, CancellationToken cancellationToken)
    {
        var ids = messages.Select(m => m.ClassificationId).Distinct().ToList();
        try
        {
            var open = await db.Classifications.AsNoTracking()
                .Where(c => ids.Contains(c.Id) && (c.Status == ClassificationStatus.Queued || c.Status == ClassificationStatus.Processing))
                .Select(c => c.Id).ToListAsync(cancellationToken);
            var now = clock.GetUtcNow().UtcDateTime;
            if (open.Count > 0)
                await db.Classifications.Where(c => open.Contains(c.Id) && c.Status == ClassificationStatus.Queued)
                    .ExecuteUpdateAsync(s => s.SetProperty(c => c.PublishedAt, now), cancellationToken);
            return ids.Except(open).ToHashSet();
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Could not look up or stamp the rows of a batch this worker has no model for; every message goes back");
            return new HashSet<Guid>();
        }
    }

    /// <summary>
    /// After a <see cref="WorkerFaultException"/>: the rows this batch left unfinished go back to queued, their attempt
    /// uncounted, as if this worker had never taken them (a worker that cannot read the store would otherwise take them to
    /// too_many_attempts). A row claimed again meanwhile is left to that claim (the attempt count is the concurrency token).
    /// Rows the claim failed for too many attempts are saved with it. Failing here only leaves the claim counted.
    /// </summary>
    private async Task ReleaseClaimAsync(List<Classification> claimed)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        foreach (var row in claimed.Where(r => r.Status == ClassificationStatus.Processing))
        {
            row.Status = ClassificationStatus.Queued;
            row.Attempts--;
            // Else a client reading the row sees it queued yet started by this worker.
            row.WorkerId = null;
            row.StartedAt = null;
            // Its message goes back to the queue: sent now, so the re-publisher adds no copy while it goes round.
            row.PublishedAt = now;
        }
        try
        {
            await db.SaveClaimedResultsAsync(CancellationToken.None);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Could not give back the claim of a batch this worker could not classify; its rows stay processing until claimed again");
        }
    }

    private static bool IsSuspect(Classification row) => row.Attempts > SuspectAfterClaims;

    /// <summary>
    /// A batch holding suspects: rows claimed more than <see cref="SuspectAfterClaims"/> times without a result, whose
    /// earlier batches most likely stopped their worker (a native crash or out of memory on one image). Redeliveries
    /// regroup such an image with the same neighbours, and each claim counts, so it took them all to too_many_attempts.
    /// The other rows are classified and saved first, then each suspect alone and saved at once: an image that stops the
    /// worker takes down only itself and the suspects not reached yet, and the rows already final are skipped next time.
    /// </summary>
    private async Task<BatchOutcome> ClassifySuspectsApartAsync(List<Classification> claimed, List<Classification> rows, IImageClassifier classifier,
        Dictionary<Guid, byte[]> carried, Stopwatch phase, double claimMs, CancellationToken cancellationToken)
    {
        var suspects = rows.Where(IsSuspect).ToList();
        var fresh = rows.Where(r => !IsSuspect(r)).ToList();
        // The rows this first pass saves: the fresh ones and those the claim failed for too many attempts.
        var others = claimed.Where(r => !suspects.Contains(r)).ToList();
        var outcome = fresh.Count > 0
            ? await ClassifyAsync(others, fresh, classifier, carried, fresh.Count(r => carried.ContainsKey(r.Id)), phase, claimMs, cancellationToken)
            : others.Count > 0 ? await SaveAsync(others, cancellationToken) : new BatchOutcome(0, 0, 0);

        // A suspect that stops the worker stops those after it too. The redelivery claims them once more and takes them in
        // the other order, so the ones not reached come first and the one that stopped the worker comes last.
        if (suspects.Max(r => r.Attempts) % 2 == 0) suspects.Reverse();
        foreach (var suspect in suspects)
        {
            logger.LogWarning("Classification {ClassificationId} was claimed {Attempts} times without a result (its batch may have stopped a worker); " +
                "classifying it alone", suspect.Id, suspect.Attempts);
            var alone = await ClassifyAsync([suspect], [suspect], classifier, carried, carried.ContainsKey(suspect.Id) ? 1 : 0, phase, claimMs: 0, cancellationToken);
            outcome = new BatchOutcome(outcome.Processed + alone.Processed, outcome.Completed + alone.Completed, outcome.Failed + alone.Failed)
            {
                Superseded = [.. outcome.Superseded, .. alone.Superseded],
            };
        }
        return outcome;
    }

    /// <summary>
    /// One pass: fetches and decodes <paramref name="rows"/>' images, runs the model once over the good ones and saves the
    /// results with those of the other rows in <paramref name="saving"/> (failed by the claim).
    /// </summary>
    private async Task<BatchOutcome> ClassifyAsync(List<Classification> saving, List<Classification> rows, IImageClassifier classifier,
        Dictionary<Guid, byte[]> carried, int carriedCount, Stopwatch phase, double claimMs, CancellationToken cancellationToken)
    {
        phase.Restart();
        var images = await Task.WhenAll(rows.Select(row => ReadAsync(row, carried.GetValueOrDefault(row.Id), cancellationToken)));
        var fetchMs = phase.Elapsed.TotalMilliseconds;
        if (ServedKey(images, rows) is { } key) probes.Served = key;
        else
        {
            if (StoreAnswer(images) is { } answer && await ReadAccessDoubtAsync(images, rows, answer, cancellationToken) is { } doubt)
                throw new WorkerFaultException($"the object store {answer.What}, and {doubt}: this worker's credentials, bucket or volume may be " +
                    "wrong; its images go back to the queue for another worker rather than fail")
                {
                    RowErrors = ReadErrors(images, rows),
                };
            // For a later batch refused throughout, while the store has served this worker nothing: one write per batch.
            if (CarriedKey(images, rows) is { } carriedKey) probes.Carried = carriedKey;
        }

        var input = classifier.Card.Input;
        var length = ImageTensorWriter.TensorLength(input);
        // Always the full batch's length: one buffer per batch in flight serves every batch size.
        var tensor = tensors.Rent(Math.Max(rows.Count, options.BatchSize) * length);
        try
        {
            phase.Restart();
            var checks = Decode(images, rows, input, tensor, length);
            var decodeMs = phase.Elapsed.TotalMilliseconds;
            var good = Enumerable.Range(0, rows.Count).Where(i => checks[i].Ok).ToArray();
            CompactSlots(tensor, good, length);

            // Batches overlap (one is fetched and decoded while others are in the model), but no more run inference at
            // once than the model has lanes: waiting here is asynchronous, so it holds no thread-pool thread (2 on 2 cores),
            // and the time recorded as inference is the model's alone.
            await lanes.WaitAsync(cancellationToken);
            float[][] probabilities;
            double inferenceMs;
            double? inferenceCpuMs;
            try
            {
                var inference = Stopwatch.StartNew();
                // Besides the wall time, the model's CPU time: their difference is time the Run waited for a core.
                var cpuAtStart = lanes.RunOnCallingThread ? ThreadCpuTime.Now() : null;
                probabilities = good.Length == 0 ? [] : classifier.Classify(tensor.AsMemory(0, good.Length * length), good.Length);
                inferenceMs = inference.Elapsed.TotalMilliseconds;
                inferenceCpuMs = ThreadCpuTime.Since(cpuAtStart)?.TotalMilliseconds;
            }
            finally
            {
                lanes.Release();
            }

            var completedAt = clock.GetUtcNow().UtcDateTime;
            for (var k = 0; k < good.Length; k++)
                Complete(rows[good[k]], classifier.Card.Labels, probabilities[k], classifier.Card.Version, inferenceMs, rows.Count, completedAt);
            foreach (var i in Enumerable.Range(0, rows.Count).Where(i => !checks[i].Ok))
                Fail(rows[i], checks[i].Error!, checks[i].Message!, completedAt);

            // Every result in one round trip; the broker acknowledges the batch only after this commits.
            phase.Restart();
            var superseded = await SaveResultsAsync(saving, cancellationToken);
            var saved = superseded.Count == 0 ? saving : saving.Where(r => !superseded.Contains(r.Id)).ToList();
            var completed = saved.Count(r => r.Status == ClassificationStatus.Completed);
            Observability.ClassifierMetrics.RecordBatch(saved, classifier.Card.Version, inferenceMs, inferenceCpuMs);
            logger.LogInformation("Classified batch of {BatchSize} with {ModelVersion}: {Completed} completed, {Failed} failed, inference {InferenceMs:F1} ms " +
                "({InferenceCpuMs:F1} CPU ms; claim {ClaimMs:F0}, fetch {FetchMs:F0}, decode {DecodeMs:F0}, save {SaveMs:F0} ms; {Carried} image(s) carried in their messages)",
                rows.Count, classifier.Card.Version, completed, saved.Count - completed, inferenceMs, inferenceCpuMs, claimMs, fetchMs, decodeMs,
                phase.Elapsed.TotalMilliseconds, carriedCount);
            return new BatchOutcome(saved.Count, completed, saved.Count - completed) { Superseded = superseded.ToList() };
        }
        finally
        {
            tensors.Return(tensor);
        }
    }

    /// <summary>A batch with nothing to classify: only rows the claim failed for too many attempts.</summary>
    private async Task<BatchOutcome> SaveAsync(List<Classification> claimed, CancellationToken cancellationToken)
    {
        var superseded = await SaveResultsAsync(claimed, cancellationToken);
        var saved = claimed.Where(r => !superseded.Contains(r.Id)).ToList();
        Observability.ClassifierMetrics.RecordRows(saved);
        return new BatchOutcome(saved.Count, 0, saved.Count) { Superseded = superseded.ToList() };
    }

    /// <summary>
    /// Saves the batch's results but those of rows claimed again meanwhile (a duplicate delivery, or a redelivery while this
    /// worker was still at work): the later claim's result is the one kept. Their ids are returned.
    /// </summary>
    private async Task<IReadOnlySet<Guid>> SaveResultsAsync(List<Classification> claimed, CancellationToken cancellationToken)
    {
        var superseded = await db.SaveClaimedResultsAsync(cancellationToken);
        foreach (var row in claimed.Where(r => superseded.Contains(r.Id)))
            logger.LogWarning("Classification {ClassificationId} was claimed again while this batch held claim {Attempt}; this result is dropped",
                row.Id, row.Attempts);
        return superseded;
    }

    /// <summary>
    /// Marks the batch's unfinished rows processing (or failed, when claimed too often) and loads them; finished rows
    /// (redeliveries) are skipped.
    /// </summary>
    private async Task<List<Classification>> ClaimRowsAsync(IReadOnlyList<ClassifyImage> messages, CancellationToken cancellationToken)
    {
        var ids = messages.Select(m => m.ClassificationId).Distinct().ToList();
        var claim = await db.ClaimAsync(ids, options.Id, clock.GetUtcNow().UtcDateTime, options.MaxAttempts, cancellationToken);
        foreach (var missing in claim.Missing)
            logger.LogWarning("No classification row {ClassificationId}; message dropped", missing);
        return claim.Claimed.OrderBy(r => ids.IndexOf(r.Id)).ToList();
    }

    private static Dictionary<Guid, byte[]> CarriedImages(IReadOnlyList<ClassifyImage> messages)
    {
        var carried = new Dictionary<Guid, byte[]>();
        foreach (var message in messages)
            if (message.ImageBytes is { Length: > 0 } bytes) carried.TryAdd(message.ClassificationId, bytes);
        return carried;
    }

    /// <summary>
    /// The bytes the message carried when they are the recorded image's (same length and SHA-256), else the object store's
    /// copy: a message must not make a row's result about other bytes than the image it records.
    /// </summary>
    private async Task<Fetched> ReadAsync(Classification row, byte[]? carried, CancellationToken cancellationToken)
    {
        var image = row.Image!;
        if (carried is null) return await FetchAsync(image, cancellationToken);
        if (carried.Length == image.SizeBytes && Convert.ToHexStringLower(SHA256.HashData(carried)) == image.ContentHash) return new Fetched(carried, Carried: true);
        logger.LogWarning("Classification {ClassificationId}: the message carried {Length} bytes that are not image {ImageId}; reading the object store",
            row.Id, carried.Length, image.Id);
        return await FetchAsync(image, cancellationToken);
    }

    /// <summary>
    /// The image's bytes, read again while their length differs from the upload's. A store that rewrites an object in place
    /// serves a short read while the same bytes are uploaded again (content-addressed keys): s3rver, which stands in for
    /// MinIO in the tests and the benchmark, did so once in about 20 load runs, failing an accepted image as empty.
    /// An answer that will not change for this object (403 AccessDenied, say) fails its row alone: thrown, it failed the
    /// whole batch, whose retries and redeliveries (regrouped with it) ended its neighbours failed too. Anything a retry may
    /// get through (a timeout, 5xx, SlowDown, a lost connection) still fails the batch, which is retried.
    /// </summary>
    private async Task<Fetched> FetchAsync(StoredImage image, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            byte[]? bytes;
            try
            {
                bytes = await store.GetAsync(image.ObjectKey, cancellationToken);
            }
            catch (Exception e) when (ObjectStoreErrors.IsPermanent(e))
            {
                // The folder store's 403: a volume owned by another uid refuses every file, as wrong credentials do.
                return new Fetched(null, ObjectStoreErrors.Describe(e), Denied: e is HttpRequestException { StatusCode: HttpStatusCode.Forbidden } or UnauthorizedAccessException);
            }
            // Rows from before sizes were recorded have 0: nothing to compare.
            if (bytes is null || image.SizeBytes <= 0 || bytes.Length == image.SizeBytes || attempt == FetchAttempts) return new Fetched(bytes, Answered: true);
            logger.LogWarning("Object {ObjectKey} read {Length} bytes, {Expected} expected (attempt {Attempt}); reading it again",
                image.ObjectKey, bytes.Length, image.SizeBytes, attempt);
            await Task.Delay(RefetchDelay, clock, cancellationToken);
        }
    }

    private ImageCheck[] Decode(Fetched[] images, List<Classification> rows, Core.Inference.ModelInputSpec input, float[] tensor, int length)
    {
        var limits = new ImageLimits { MaxPixels = options.MaxPixels };
        var checks = new ImageCheck[images.Length];
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.DecodeParallelism) };
        Parallel.For(0, images.Length, parallel, i =>
        {
            var expected = rows[i].Image!.SizeBytes;
            checks[i] = images[i] switch
            {
                { Refusal: { } refusal } => ImageCheck.Refused(UnreadableImage, $"the object store refused to return the image: {refusal}"),
                { Bytes: null } => ImageCheck.Refused(MissingImage, "the image is no longer in the object store"),
                { Bytes: { } bytes } when expected > 0 && bytes.Length != expected =>
                    ImageCheck.Refused(SizeMismatch, $"the object store returned {bytes.Length} bytes of the {expected} accepted"),
                { Bytes: { } bytes } => ImageTensorWriter.Write(bytes, input, tensor.AsSpan(i * length, length), limits),
            };
        });
        return checks;
    }

    /// <summary>Moves the decoded images to the front of the tensor so the model sees only good ones.</summary>
    private static void CompactSlots(float[] tensor, int[] good, int length)
    {
        for (var k = 0; k < good.Length; k++)
            if (good[k] != k) Array.Copy(tensor, good[k] * length, tensor, k * length, length);
    }

    /// <summary>
    /// A row's image (null: no object has its key), or the store's answer when it refused the object for good.
    /// <see cref="Answered"/>: the store served this read (the object or its absence); <see cref="Denied"/>: it answered 403
    /// (or the folder store's file could not be opened for want of permission);
    /// <see cref="Carried"/>: the image's own bytes came in its message, and the store was not asked.
    /// </summary>
    private readonly record struct Fetched(byte[]? Bytes, string? Refusal = null, bool Denied = false, bool Answered = false, bool Carried = false);

    /// <summary>The key of an object the store served in this pass, if any: kept for <see cref="ReadAccessDoubtAsync"/>.</summary>
    private static string? ServedKey(Fetched[] images, List<Classification> rows)
    {
        for (var i = 0; i < images.Length; i++)
            if (images[i] is { Answered: true, Bytes: not null }) return rows[i].Image!.ObjectKey;
        return null;
    }

    /// <summary>
    /// The key of an image this pass took from its message and was not refused, if any: for <see cref="ReadAccessDoubtAsync"/>.
    /// </summary>
    private static string? CarriedKey(Fetched[] images, List<Classification> rows)
    {
        for (var i = 0; i < images.Length; i++)
            if (images[i].Carried && rows[i].Image!.ObjectKey is var key && !RefusedIn(images, rows, key)) return key;
        return null;
    }

    /// <summary>
    /// Whether this pass was refused <paramref name="key"/>: two rows of one image (content-addressed keys), one carried
    /// and the other not, share a refused object, which cannot tell the worker's access from the image's.
    /// </summary>
    private static bool RefusedIn(Fetched[] images, List<Classification> rows, string key)
    {
        for (var i = 0; i < images.Length; i++)
            if (images[i].Refusal is not null && rows[i].Image!.ObjectKey == key) return true;
        return false;
    }

    /// <summary>
    /// What the store answered a pass that it served nothing, when that may be about this worker rather than the images:
    /// 403 or not found to every read. A 403 is about one object when the store served another read of the
    /// same pass: a worker whose credentials or bucket policy do not allow reading gets 403 for every object, and failing
    /// them all at once would lose images that another worker, or a fixed policy, could read. S3 also answers 403 for a
    /// missing key without list permission. Likewise every object missing: the API stores each image before sending its
    /// message, so that is more likely a wrong bucket (created empty at start) or an unmounted volume than lost images.
    /// Such a pass (a lone image too, or the only one not carried in its message) asks <see cref="ReadAccessDoubtAsync"/>;
    /// unless that clears the worker, it is a <see cref="WorkerFaultException"/>. Null for any other pass.
    /// </summary>
    private static StoreDoubt? StoreAnswer(Fetched[] images)
    {
        bool denied = false, missed = false;
        foreach (var image in images)
        {
            if (image.Carried) continue;
            if (image is { Answered: true, Bytes: null }) missed = true;
            else if (image.Answered) return null;
            else denied |= image.Denied;
        }
        // Both at once too: a policy that allows listing but not reading answers 404 for a missing key, 403 for the rest.
        return denied && missed ? new StoreDoubt("answered 403 or not found to every image this batch asked it for", $"{UnreadableImage} or {MissingImage}", Denied: true)
            : denied ? new StoreDoubt("answered 403 to every image this batch asked it for", UnreadableImage, Denied: true)
            : missed ? new StoreDoubt("had none of the images this batch asked it for", MissingImage, Denied: false)
            : null;
    }

    /// <summary>Each row's own refused or missing read, as <see cref="Decode"/> fails it: for a row given up on after its send-backs.</summary>
    private static Dictionary<Guid, RowError> ReadErrors(Fetched[] images, List<Classification> rows)
    {
        var errors = new Dictionary<Guid, RowError>();
        for (var i = 0; i < images.Length; i++)
        {
            if (images[i] is { Refusal: { } refusal }) errors[rows[i].Id] = new RowError(UnreadableImage, $"the object store refused to return the image: {refusal}");
            else if (images[i] is { Answered: true, Bytes: null }) errors[rows[i].Id] = new RowError(MissingImage, "the image is no longer in the object store");
        }
        return errors;
    }

    /// <summary>
    /// A store answer that may be about this worker: in words, the error its rows fail with when it is not, and whether
    /// any read was refused (403) rather than missing.
    /// </summary>
    private sealed record StoreDoubt(string What, string ErrorCode, bool Denied);

    /// <summary>
    /// After a pass whose every store read was refused (403), or found nothing (<paramref name="answer"/>): null when the
    /// store still serves this worker another object, so the answers are about those objects and their rows fail; else why
    /// the worker's own access stays in doubt and the batch is a <see cref="WorkerFaultException"/>: no object to check
    /// with, that object refused or missing too, or not reached. The objects checked, in turn
    /// until one answers: that of an image this pass took from its message (stored by the API moments ago, as the refused
    /// images were: a refusal of new objects alone, such as a rotated encryption key, shows there too), the one the store
    /// served this worker last (a read with these credentials succeeded), then that of an image an earlier batch took from
    /// its message; never one this pass was refused. One that is gone (404 says nothing about access) is forgotten and the
    /// next is tried. The probe's own errors never fail a row.
    /// </summary>
    private async Task<string?> ReadAccessDoubtAsync(Fetched[] images, List<Classification> rows, StoreDoubt answer, CancellationToken cancellationToken)
    {
        var gone = new List<string>();
        var candidates = ProbeObjects(images, rows).ToList();
        // A fresh worker whose only traffic is missing has nothing of its own to check with, and would send the same rows
        // back for ever: the image of a row completed lately was served to a worker. Not for a 403: that image may be older
        // than the refused ones, and a refusal of new objects alone (a rotated KMS key, a policy change) would fail them.
        if (candidates.Count == 0 && !answer.Denied && await CompletedImageKeyAsync(rows, cancellationToken) is { } completed)
            candidates.Add((completed, "the image of a classification completed lately"));
        foreach (var (key, what) in candidates)
        {
            try
            {
                // Read the way the images are (not a HEAD): some refusals hit reads alone, such as a withdrawn KMS key or a
                // policy on presigned requests. One object's bytes, on a path taken only when a whole batch was refused.
                if (await store.GetAsync(key, cancellationToken) is not null)
                {
                    logger.LogWarning("The object store {StoreAnswer} but serves object {ObjectKey}, {ProbeObject}: " +
                        "its answers are about those images, whose rows fail with {ErrorCode}", answer.What, key, what, answer.ErrorCode);
                    return null;
                }
                logger.LogInformation("Object {ObjectKey}, {ProbeObject}, is gone: it can no longer check this worker's access", key, what);
                probes.Forget(key);
                gone.Add(key);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning(e, "The object store {StoreAnswer}, and checking object {ObjectKey}, {ProbeObject}, " +
                    "failed too; the images go back to the queue", answer.What, key, what);
                return $"checking object {key}, {what}, failed too ({ObjectStoreErrors.Describe(e)})";
            }
        }
        var reason = gone.Count > 0 ? $"the objects it could check its access with are gone ({string.Join(", ", gone)})"
            : probes.Served is null && probes.Carried is null && !Array.Exists(images, f => f.Carried)
                ? "this worker has read no object yet, and no image has come in its message or been classified, to check its access with"
                : "the only objects this worker could check its access with are among those refused";
        logger.LogWarning("The object store {StoreAnswer}, and {Reason}; the images go back to the queue", answer.What, reason);
        return reason;
    }

    /// <summary>Tags the query of <see cref="CompletedImageKeyAsync"/> (tests count it).</summary>
    internal const string CompletedImageQueryTag = "Access probe: the image of the classification completed last";

    /// <summary>
    /// The object key of the row completed last, none of this batch's; null when there is none or the query fails. Kept
    /// for <see cref="AccessProbeKeys.CompletedKeyLifetime"/>: a fresh faulty worker runs this on every batch.
    /// </summary>
    private async Task<string?> CompletedImageKeyAsync(List<Classification> rows, CancellationToken cancellationToken)
    {
        var keys = rows.Select(r => r.Image!.ObjectKey).ToList();
        var now = clock.GetUtcNow().UtcDateTime;
        if (probes.TryGetCompleted(now, out var kept)) return kept is not null && !keys.Contains(kept) ? kept : null;
        try
        {
            // CompletedAt not null: PostgreSQL sorts NULLs first in a descending order, so the index scan passed every
            // unfinished row before the first completed one.
            var key = await db.Classifications.AsNoTracking()
                .TagWith(CompletedImageQueryTag)
                .Where(c => c.Status == ClassificationStatus.Completed && c.CompletedAt != null && !keys.Contains(c.Image!.ObjectKey))
                .OrderByDescending(c => c.CompletedAt)
                .Select(c => c.Image!.ObjectKey)
                .FirstOrDefaultAsync(cancellationToken);
            probes.SetCompleted(key, now);
            return key;
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning(e, "Could not look up a completed classification's image to check this worker's access with");
            return null;
        }
    }

    /// <summary>The objects <see cref="ReadAccessDoubtAsync"/> may read, in its order, and what each is to this worker.</summary>
    private IEnumerable<(string Key, string What)> ProbeObjects(Fetched[] images, List<Classification> rows)
    {
        var fresh = CarriedKey(images, rows);
        if (fresh is not null) yield return (fresh, "the stored copy of an image that came in its message in this batch");
        if (probes.Served is { } served && served != fresh && !RefusedIn(images, rows, served)) yield return (served, "which this worker read before");
        if (probes.Carried is { } carried && carried != fresh && carried != probes.Served && !RefusedIn(images, rows, carried))
            yield return (carried, "the stored copy of an image that came in its message in an earlier batch");
    }

    private void Complete(Classification row, IReadOnlyList<string> labels, float[] probabilities, string modelVersion, double inferenceMs, int batchSize, DateTime completedAt)
    {
        // A NaN or infinite score cannot be stored as JSON: thrown by the serializer, it failed the whole batch, whose retries
        // and redeliveries failed its neighbours too. Only the row it came for fails.
        for (var i = 0; i < probabilities.Length; i++)
        {
            if (float.IsFinite(probabilities[i])) continue;
            Fail(row, ModelOutputInvalid, $"model {modelVersion} gave this image the score {probabilities[i].ToString(CultureInfo.InvariantCulture)} for '{labels[i]}', which is not a finite number; " +
                "no result is recorded", completedAt);
            return;
        }
        var best = 0;
        for (var i = 1; i < probabilities.Length; i++) if (probabilities[i] > probabilities[best]) best = i;
        row.Status = ClassificationStatus.Completed;
        row.PredictedClass = labels[best];
        row.Confidence = Math.Round(probabilities[best], 6);
        row.AllPredictions = ClassificationResultJson.Serialize(labels, probabilities);
        row.ModelVersion = modelVersion;
        row.ErrorCode = null;
        row.Error = null;
        SetTimings(row, inferenceMs, batchSize, completedAt);
    }

    private void Fail(Classification row, string code, string message, DateTime completedAt)
    {
        logger.LogWarning("Classification {ClassificationId} failed: {ErrorCode} {Error}", row.Id, code, message);
        row.Status = ClassificationStatus.Failed;
        row.ErrorCode = code;
        row.Error = message;
        SetTimings(row, inferenceMs: null, batchSize: null, completedAt);
    }

    private void GaveUp(Classification row, DateTime completedAt)
    {
        logger.LogWarning("Classification {ClassificationId} failed: {ErrorCode} {Error}", row.Id, row.ErrorCode, row.Error);
        SetTimings(row, inferenceMs: null, batchSize: null, completedAt);
    }

    private void SetTimings(Classification row, double? inferenceMs, int? batchSize, DateTime completedAt)
    {
        row.WorkerId = options.Id;
        row.BatchSize = batchSize;
        row.InferenceMs = inferenceMs is { } ms ? Math.Round(ms, 3) : null;
        row.QueueMs = Math.Round(Math.Max(0, (row.StartedAt!.Value - row.CreatedAt).TotalMilliseconds), 3);
        row.TotalMs = Math.Round(Math.Max(0, (completedAt - row.CreatedAt).TotalMilliseconds), 3);
        row.CompletedAt = completedAt;
    }
}

/// <summary>
/// Rows a batch finished (of them completed and failed), and the ids whose results it dropped because a later claim of
/// the same row holds it (<see cref="Superseded"/>: they are neither counted nor announced).
/// </summary>
public sealed record BatchOutcome(int Processed, int Completed, int Failed)
{
    public IReadOnlyList<Guid> Superseded { get; init; } = [];

    // By value, the ids included: a record compares a list by reference.
    public bool Equals(BatchOutcome? other) =>
        other is not null && (Processed, Completed, Failed) == (other.Processed, other.Completed, other.Failed) && Superseded.SequenceEqual(other.Superseded);

    public override int GetHashCode() => HashCode.Combine(Processed, Completed, Failed, Superseded.Count);
}
