using System.Data.Common;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Logging;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Components.Models;

/// <summary>
/// The model registry: rows in the models table, files in the object store under <c>models/{version}/{id}/</c> (the row's
/// artifact_prefix; <c>models/{version}/</c> for versions registered before).
/// Exactly one version is active; promotion retires the previous one and announces <see cref="ModelPromoted"/>.
/// </summary>
public sealed partial class ModelRegistry(
    ClassifierDbContext db,
    IObjectStore store,
    IPublishEndpoint publisher,
    ModelOptions options,
    TimeProvider clock,
    ILogger<ModelRegistry> logger)
{
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex ValidVersion();

    public static bool IsValidVersion(string version) => ValidVersion().IsMatch(version);

    /// <summary>The product's classes, in the order the product uses them; shown when no model is registered yet.</summary>
    public static readonly IReadOnlyList<string> ProductClasses =
        ["cardboard", "food organics", "glass", "metal", "miscellaneous trash", "paper", "plastic", "textile trash", "vegetation"];

    /// <summary>Labels an operator may give: the active model's plus the product's (a class new to the model, e.g. vegetation).</summary>
    public async Task<IReadOnlyList<string>> ValidLabelsAsync(CancellationToken cancellationToken)
    {
        var active = await GetActiveAsync(cancellationToken);
        return WithProductClasses(active is null ? null : ReadCard(active));
    }

    /// <summary>The labels of <paramref name="active"/>, in its order, then the product's classes it lacks; the product's alone without a model.</summary>
    public static IReadOnlyList<string> WithProductClasses(ModelCard? active) => active is null ? ProductClasses : active.Labels.Union(ProductClasses).ToList();

    public static ModelCard ReadCard(ModelRecord record) =>
        JsonSerializer.Deserialize<ModelCard>(record.CardJson, ModelCard.JsonOptions) ?? throw new InvalidDataException($"model {record.Version} has an empty card");

    public static string PrefixFor(string version) => $"models/{version}/";

    public Task<ModelRecord?> GetActiveAsync(CancellationToken cancellationToken) =>
        db.Models.AsNoTracking().Where(m => m.Status == ModelStatus.Active).OrderByDescending(m => m.PromotedAt).FirstOrDefaultAsync(cancellationToken);

    public Task<ModelRecord?> FindAsync(string version, CancellationToken cancellationToken) =>
        db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Version == version, cancellationToken);

    /// <summary>
    /// Registers the model shipped with the service (models/default) on first start, as active when nothing is.
    /// Safe to race: every API, worker and trainer process calls it.
    /// </summary>
    public async Task EnsureBundledAsync(CancellationToken cancellationToken)
    {
        var card = ModelCard.Load(options.Directory);
        if (await db.Models.AnyAsync(m => m.Version == card.Version, cancellationToken)) return;
        var hasActive = await db.Models.AnyAsync(m => m.Status == ModelStatus.Active, cancellationToken);
        try
        {
            // A model trained offline and served through Model:Directory is not the shipped one: its card's metrics come from
            // whatever data it was trained on, which "bundled" passed off as the shipped model's.
            var origin = SamePath(options.Directory, ModelOptions.BundledDirectory) ? "bundled" : "directory";
            await RegisterAsync(card, ReadFiles(options.Directory, card), origin, trainingJobId: null,
                card.Metrics?.GetRawText(), hasActive ? ModelStatus.Candidate : ModelStatus.Active, cancellationToken);
            logger.LogInformation("Registered the {Origin} model {ModelVersion} from {Directory}", origin, card.Version, options.Directory);
        }
        catch (InvalidOperationException)
        {
            // Another process registered it first (its own files kept, this one's deleted); anything else is a real failure.
            db.ChangeTracker.Clear();
            if (!await db.Models.AsNoTracking().AnyAsync(m => m.Version == card.Version, cancellationToken)) throw;
        }
    }

    private static bool SamePath(string a, string b) =>
        string.Equals(Path.TrimEndingDirectorySeparator(Path.GetFullPath(a)), Path.TrimEndingDirectorySeparator(Path.GetFullPath(b)),
            OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);

    /// <summary>
    /// Uploads the files (card.json is written from <paramref name="card"/>) and records the version, as
    /// <see cref="RegisterFencedAsync"/> does with nothing to fence: under a prefix of this call's own, so two imports of one
    /// version at once do not overwrite each other's files (the one the database refuses deletes its own and throws
    /// <see cref="InvalidOperationException"/>).
    /// </summary>
    public async Task<ModelRecord> RegisterAsync(ModelCard card, IReadOnlyDictionary<string, byte[]> files, string origin, Guid? trainingJobId,
        string? metricsJson, string status, CancellationToken cancellationToken) =>
        await RegisterFencedAsync(card, files, origin, trainingJobId, metricsJson, status, _ => Task.FromResult(true), cancellationToken)
            ?? throw new InvalidOperationException($"model version '{card.Version}' was not registered"); // a fence that always answers true

    /// <summary>
    /// As <see cref="RegisterAsync"/>, but records the version only if <paramref name="fence"/>, run on this registry's
    /// context in the transaction that inserts the row, answers true (a training job still held by its trainer's claim).
    /// Otherwise nothing is recorded, the uploaded files are deleted (best effort) and null is returned. A version already
    /// registered is refused (<see cref="InvalidOperationException"/>) before anything is uploaded, and so is one that a
    /// registration of the same name recorded meanwhile, once the database refuses the row. The files go under a prefix of
    /// this call's own (<c>models/{version}/{id}/</c>, named by the row), so they are this call's alone to delete: two
    /// registrations of one name at once both passed the check, and the second upload overwrote the files of whichever row
    /// won. A failure after the upload began (the store's, the database's) deletes them too (best effort), then is thrown;
    /// but one after the commit went through (its answer lost) finds the row this call recorded, keeps them and returns it,
    /// and one after a COMMIT was sent that is not the database refusing the row keeps them (logged) and is thrown: that
    /// COMMIT may land after the read that found no row.
    /// </summary>
    public async Task<ModelRecord?> RegisterFencedAsync(ModelCard card, IReadOnlyDictionary<string, byte[]> files, string origin, Guid? trainingJobId,
        string? metricsJson, string status, Func<ClassifierDbContext, Task<bool>> fence, CancellationToken cancellationToken)
    {
        CheckCard(card);
        // Checked first, to refuse before uploading anything; the database's key on the version settles a race past it.
        if (await db.Models.AsNoTracking().AnyAsync(m => m.Version == card.Version, cancellationToken))
            throw new InvalidOperationException($"model version '{card.Version}' is already registered; its files were left as they are");
        // This call's own: a registration of the same name at the same moment cannot overwrite these files, nor this one its.
        var prefix = $"{PrefixFor(card.Version)}{Guid.NewGuid():N}/";
        bool registered;
        ModelRecord? record = null;
        // Set once a try sent its COMMIT: from then on, a read that finds no row does not prove none will appear (PostgreSQL:
        // a COMMIT stalled on the server, its connection broken, lands later; the tries after it timed out waiting on its row).
        var commitSent = false;
        try
        {
            record = await UploadAsync(card, files, origin, trainingJobId, metricsJson, status, prefix, cancellationToken);
            var tries = 0;
            registered = await db.Database.CreateExecutionStrategy().ExecuteAsync(async () =>
            {
                db.ChangeTracker.Clear();
                // A try again after a commit that went through but whose answer was lost (a dropped connection, which
                // PostgreSQL's strategy retries): the row is this call's own. Inserted again, it met the version's key, and the
                // files its row names were deleted.
                if (tries++ > 0 && await db.Models.AsNoTracking().AnyAsync(m => m.ArtifactPrefix == prefix, cancellationToken)) return true;
                await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
                if (!await fence(db)) return false;
                db.Models.Add(record);
                await db.SaveChangesAsync(cancellationToken);
                commitSent = true;
                await transaction.CommitAsync(cancellationToken);
                return true;
            });
        }
        catch (Exception e)
        {
            db.ChangeTracker.Clear();
            // Uploaded, the files are deleted only once the database says no row names them: a failure after the commit went
            // through (its answer lost) left this call's row, which must keep them.
            var (known, recorded) = record is null ? (true, null) : await RecordedPrefixAsync(card.Version, prefix, e);
            if (!known) throw;
            if (recorded == prefix)
            {
                logger.LogWarning("Model {ModelVersion} was registered; the failure that followed its commit is ignored: {Reason}", card.Version, e.Message);
                return record;
            }
            // Not the database refusing the row, after a COMMIT was sent, and no other row holds the version: that COMMIT may
            // still land, and a row without its files is worse than files without a row.
            if (commitSent && e is not DbUpdateException && recorded is null)
            {
                KeepUploaded(card.Version, prefix, e.Message);
                throw;
            }
            await DeleteUploadedAsync(card, files, prefix, e.Message);
            if (e is DbUpdateException && recorded is not null)
                throw new InvalidOperationException($"model version '{card.Version}' was registered meanwhile; its files were left as they are", e);
            throw;
        }
        if (registered) return record;
        db.ChangeTracker.Clear();
        var (fenceKnown, fenceRecorded) = await RecordedPrefixAsync(card.Version, prefix, failure: null);
        if (fenceRecorded == prefix) return record;
        // Refused by the fence on a later try, after an earlier one sent its COMMIT: that one may still land.
        if (commitSent && fenceRecorded is null) KeepUploaded(card.Version, prefix, "refused by its fence after an earlier try's commit failed");
        else if (fenceKnown) await DeleteUploadedAsync(card, files, prefix, "refused by its fence");
        return null;
    }

    private void KeepUploaded(string version, string prefix, string failure) =>
        logger.LogWarning("Model {ModelVersion} is not registered, but a commit of its row was sent and may still land; its files under {Prefix} are kept. " +
            "The registration's failure: {Failure}", version, prefix, failure);

    /// <summary>
    /// The artifact prefix of the row recorded under <paramref name="version"/> (null: none); not known when the database
    /// cannot be read, which keeps the files under <paramref name="prefix"/> (logged): they may be a recorded row's.
    /// </summary>
    private async Task<(bool Known, string? Prefix)> RecordedPrefixAsync(string version, string prefix, Exception? failure)
    {
        try
        {
            return (true, await db.Models.AsNoTracking().Where(m => m.Version == version).Select(m => m.ArtifactPrefix).FirstOrDefaultAsync(CancellationToken.None));
        }
        catch (Exception e)
        {
            logger.LogWarning("Could not read whether model {ModelVersion} was registered ({Reason}); its files under {Prefix} are kept. The registration's failure: {Failure}",
                version, e.Message, prefix, failure?.Message ?? "refused by its fence");
            return (false, null);
        }
    }

    private static void CheckCard(ModelCard card)
    {
        if (!IsValidVersion(card.Version)) throw new InvalidDataException($"model version '{card.Version}' must be 1–128 letters, digits, '.', '_' or '-'");
        card.Validate(card.Version);
    }

    /// <summary>Best effort: a file left behind costs space in the store, never a model's correctness.</summary>
    private async Task DeleteUploadedAsync(ModelCard card, IReadOnlyDictionary<string, byte[]> files, string prefix, string why)
    {
        foreach (var key in files.Keys.Where(f => f != ModelCard.FileName).Select(f => prefix + SafeFileName(f)).Append(prefix + ModelCard.FileName))
        {
            try
            {
                await store.DeleteAsync(key, CancellationToken.None);
            }
            catch (Exception e)
            {
                logger.LogWarning("Model {ModelVersion} was not registered ({Why}), and its file {Key} could not be deleted: {Reason}", card.Version, why, key, e.Message);
            }
        }
    }

    private async Task<ModelRecord> UploadAsync(ModelCard card, IReadOnlyDictionary<string, byte[]> files, string origin, Guid? trainingJobId,
        string? metricsJson, string status, string prefix, CancellationToken cancellationToken)
    {
        CheckCard(card);
        foreach (var (name, content) in files.Where(f => f.Key != ModelCard.FileName))
            await store.PutAsync(prefix + SafeFileName(name), content, "application/octet-stream", cancellationToken);
        var cardJson = JsonSerializer.Serialize(card, ModelCard.JsonOptions);
        await store.PutAsync(prefix + ModelCard.FileName, System.Text.Encoding.UTF8.GetBytes(cardJson), "application/json", cancellationToken);

        var now = clock.GetUtcNow().UtcDateTime;
        var record = new ModelRecord
        {
            Version = card.Version,
            ParentVersion = card.ParentVersion,
            Status = status,
            Origin = origin,
            TrainingJobId = trainingJobId,
            CardJson = cardJson,
            MetricsJson = metricsJson,
            ArtifactPrefix = prefix,
            CreatedAt = now,
            PromotedAt = status == ModelStatus.Active ? now : null,
        };
        return record;
    }

    /// <summary>
    /// Makes <paramref name="version"/> the active model and announces it; returns the version it replaced. An announcement
    /// that fails is logged, not thrown: the promotion stands.
    /// </summary>
    public async Task<string?> PromoteAsync(string version, CancellationToken cancellationToken) =>
        (await PromoteCoreAsync(version, requireActive: false, expectedActive: null, cancellationToken)).Previous;

    /// <summary>
    /// Makes <paramref name="version"/> the active model again, as <see cref="PromoteAsync"/>; returns false, changing and
    /// announcing nothing, when it is the active model already. Checked under the promotion lock: two rollbacks to one
    /// version at once both found it inactive beforehand, and the second promoted it again (a new promoted_at, a second
    /// ModelPromoted, and no previous version).
    /// </summary>
    public async Task<(bool RolledBack, string? Previous)> RollbackAsync(string version, CancellationToken cancellationToken)
    {
        var (rolledBack, previous) = await PromoteCoreAsync(version, requireActive: false, expectedActive: null, cancellationToken, unlessActive: true);
        return (rolledBack, rolledBack ? previous : null);
    }

    /// <summary>
    /// As <see cref="PromoteAsync"/>, only while <paramref name="expectedActive"/> is still the active model (null: while
    /// none is). A candidate judged against one model must not replace another that an operator promoted or rolled back
    /// to meanwhile. Returns false, changing nothing, when the active model is another; true, changing nothing, when
    /// <paramref name="version"/> was ever promoted (by another caller: a trainer that took over the job, perhaps at the same
    /// moment), whether it is still active or an operator has rolled back from it since, which stands.
    /// </summary>
    public async Task<bool> PromoteReplacingAsync(string version, string? expectedActive, CancellationToken cancellationToken)
    {
        var (promoted, active) = await PromoteCoreAsync(version, requireActive: true, expectedActive, cancellationToken);
        return promoted || active == version;
    }

    private async Task<(bool Promoted, string? Previous)> PromoteCoreAsync(string version, bool requireActive, string? expectedActive,
        CancellationToken cancellationToken, bool unlessActive = false)
    {
        var strategy = db.Database.CreateExecutionStrategy();
        // What this call wrote, kept across the strategy's retries: PostgreSQL's strategy runs the block again when the
        // connection drops after the COMMIT went through, and the rerun finds the target promoted by this call's own hand.
        // Recognised, it answers as the first try would have and announces once; otherwise a promotion was made again (no
        // previous version), a trainer's found "promoted before" and a rollback "already active", the last two unannounced.
        DateTime? promotedAt = null;
        string? replacedVersion = null;
        bool promoted;
        string? previous;
        try
        {
            (promoted, previous) = await strategy.ExecuteAsync(async () =>
            {
                db.ChangeTracker.Clear();
                await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
                // Two promotions at once would each retire the same old model and leave both targets active.
                await ClusterLocks.TakeAsync(db, ClusterLocks.ModelPromotions, cancellationToken);
                var target = await db.Models.FirstOrDefaultAsync(m => m.Version == version, cancellationToken)
                    ?? throw new KeyNotFoundException($"no model version {version}");
                // This call's own commit, whether or not the target is still active (a promotion since by another stands).
                if (promotedAt is not null && target.PromotedAt == promotedAt) return (true, replacedVersion);
                // Read under the lock: a trainer that found the candidate never promoted, then stalled while another promoted it
                // and an operator rolled back, would otherwise promote it again (the active model is its baseline once more).
                if (requireActive && target.PromotedAt is not null) return (false, version);
                if (unlessActive && target.Status == ModelStatus.Active) return (false, version);
                var actives = await db.Models.Where(m => m.Status == ModelStatus.Active).OrderByDescending(m => m.PromotedAt).ToListAsync(cancellationToken);
                if (requireActive && actives.FirstOrDefault()?.Version != expectedActive) return (false, actives.FirstOrDefault()?.Version);
                foreach (var active in actives.Where(m => m.Version != version)) active.Status = ModelStatus.Retired;
                target.Status = ModelStatus.Active;
                var now = clock.GetUtcNow().UtcDateTime;
                // Whole microseconds, as PostgreSQL keeps them, so a retry can recognise the value it reads back.
                target.PromotedAt = now.AddTicks(-(now.Ticks % 10));
                (promotedAt, replacedVersion) = (target.PromotedAt, actives.FirstOrDefault(m => m.Version != version)?.Version);
                await db.SaveChangesAsync(cancellationToken);
                await transaction.CommitAsync(cancellationToken);
                return (true, replacedVersion);
            });
        }
        catch (Exception e) when (promotedAt is not null && CommitOutcomeUnknown(e))
        {
            // The tries ran out (the database away for each), the connection failed, or the caller gave up (the API's
            // request-aborted token, during the strategy's retries) after a try whose COMMIT may have gone through: the API
            // answered 503 for a promotion that stood, announced none, and the client's retry promoted it again with no
            // previous version (a rollback's found it "already active"). Read once, on a token of its own (the caller's may be
            // cancelled): this call's promoted_at on the target is its own commit.
            using var readTimeout = new CancellationTokenSource(SingleAttempt.ReadTimeout);
            if (await SingleAttempt.ReadOnceAsync(db, ct => db.Models.AsNoTracking().Where(m => m.Version == version).Select(m => m.PromotedAt).FirstOrDefaultAsync(ct),
                    readTimeout.Token) != promotedAt)
                throw;
            logger.LogWarning(e, "Model {ModelVersion} promoted by a commit that was not acknowledged; announcing it", version);
            (promoted, previous) = (true, replacedVersion);
        }
        if (!promoted)
        {
            if (unlessActive) logger.LogInformation("Model {ModelVersion} not rolled back to: it is the active model", version);
            else if (previous == version) logger.LogInformation("Model {ModelVersion} not promoted again: it was promoted before", version);
            else logger.LogInformation("Model {ModelVersion} not promoted: the active model is {ActiveVersion}, not {ExpectedVersion}", version, previous, expectedActive);
            return (false, previous);
        }
        // The promotion is committed: an announcement that fails or hangs (a broker that is down) must neither turn it into an
        // error (the API answered 500, a job ended failed, for a promotion that stood) nor hold the caller. Workers that miss
        // the event load the version at their next registry check (ModelWatcher, every Model:RefreshSeconds).
        // Not linked to the caller's token: a client that gave up after the COMMIT still leaves a promotion that stands.
        using var timeout = new CancellationTokenSource(PublishTimeout);
        try
        {
            await publisher.Publish(new ModelPromoted { Version = version, PreviousVersion = previous, PromotedAt = clock.GetUtcNow() }, timeout.Token);
            logger.LogInformation("Promoted model {ModelVersion} (was {PreviousVersion})", version, previous);
        }
        catch (Exception e)
        {
            logger.LogWarning("Promoted model {ModelVersion} (was {PreviousVersion}), but could not announce it ({Reason}); workers load it at their next " +
                "registry check (Model:RefreshSeconds)", version, previous, e.Message);
        }
        return (true, previous);
    }

    /// <summary>
    /// A failure of a promotion's tries that leaves unknown whether its COMMIT went through, as the API's
    /// <c>CommitOutcomes.Unknown</c>: the retries ran out, the connection or a timeout failed, or the caller's token was
    /// cancelled between the COMMIT and its answer or during the retries. The read of promoted_at decides.
    /// </summary>
    private static bool CommitOutcomeUnknown(Exception e) => e switch
    {
        RetryLimitExceededException or OperationCanceledException or DbException or SocketException or TimeoutException or IOException => true,
        DbUpdateException or InvalidOperationException when e.InnerException is { } inner => CommitOutcomeUnknown(inner),
        _ => false,
    };

    /// <summary>How long a committed promotion waits for its announcement, as the API's sends do.</summary>
    internal static readonly TimeSpan PublishTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Copies a version's files into <paramref name="cacheRoot"/>/{version} (once) and returns that folder. A download that
    /// fails leaves no staging folder behind (ModelWatcher tries again every 30 s: each try left one more, for good), and
    /// one that a process ended mid-way is removed by a later download.
    /// </summary>
    public async Task<string> DownloadAsync(ModelRecord record, string cacheRoot, CancellationToken cancellationToken)
    {
        var directory = Path.Combine(cacheRoot, record.Version);
        var card = ReadCard(record);
        var artifacts = new[] { card.Head, card.Onnx }.OfType<string>().Select(SafeFileName).ToList();
        if (File.Exists(Path.Combine(directory, ModelCard.FileName)))
        {
            if (artifacts.All(name => File.Exists(Path.Combine(directory, name)))) return directory;
            // A copy that lost a file (deleted by hand, a disk fault) would fail every load: it is fetched again.
            logger.LogWarning("The cached copy of model {ModelVersion} in {Folder} lacks a file; downloading it again", record.Version, directory);
            Remove(directory);
        }
        RemoveAbandoned();
        // Download beside the final folder and rename, so a half-downloaded model is never loaded.
        var staging = directory + StagedMarker + Guid.NewGuid().ToString("N");
        try
        {
            Directory.CreateDirectory(staging);
            foreach (var name in artifacts)
            {
                var bytes = await store.GetAsync(record.ArtifactPrefix + name, cancellationToken)
                    ?? throw new FileNotFoundException($"model {record.Version}: {name} is missing from the object store");
                await File.WriteAllBytesAsync(Path.Combine(staging, name), bytes, cancellationToken);
            }
            await File.WriteAllTextAsync(Path.Combine(staging, ModelCard.FileName), record.CardJson, cancellationToken);
            try
            {
                Directory.Move(staging, directory);
            }
            catch (IOException) when (Directory.Exists(directory))
            {
                // Another loader in this process won; its copy is used.
            }
        }
        finally
        {
            // Moved, it is gone; otherwise (the race lost, the object missing, the disk full, cancelled) it goes now.
            if (Directory.Exists(staging)) Remove(staging);
        }
        return directory;

        // Staging folders of downloads that a process ended mid-way (killed, crashed). One in progress, perhaps in another
        // process sharing the cache, is written to as it goes; only folders untouched for a while are taken.
        void RemoveAbandoned()
        {
            if (!Directory.Exists(cacheRoot)) return;
            // Against the machine's clock, which stamps the folders, not the injected one: a host whose clock runs ahead would
            // take another host's download in progress for abandoned and empty it mid-way.
            var before = DateTime.UtcNow - TimeSpan.FromMinutes(10);
            foreach (var folder in Directory.EnumerateDirectories(cacheRoot, "*" + StagedMarker + "*"))
                if (Directory.GetLastWriteTimeUtc(folder) < before) Remove(folder);
        }
    }

    // Marks a download in progress: DownloadAsync's staging folders beside the versions in the cache.
    private const string StagedMarker = ".partial-";

    /// <summary>
    /// Deletes the copies in <paramref name="cacheRoot"/> of versions other than <paramref name="keep"/> (a worker keeps the
    /// version it serves and the one before, for a roll back): each promotion added one for good. A loaded model no longer
    /// reads its folder (sessions are built from bytes read at load), so a batch still on an older version loses nothing;
    /// downloads in progress are left alone. Best effort: a copy left behind costs disk, and a version deleted under
    /// another loader sharing the cache is downloaded again by its next try.
    /// </summary>
    public void PruneCache(string cacheRoot, IReadOnlyCollection<string> keep)
    {
        try
        {
            if (!Directory.Exists(cacheRoot)) return;
            foreach (var folder in Directory.EnumerateDirectories(cacheRoot))
            {
                var name = Path.GetFileName(folder);
                if (keep.Contains(name) || name.Contains(StagedMarker, StringComparison.Ordinal)) continue;
                logger.LogInformation("Removing the cached copy of model {ModelVersion} from {Folder}", name, cacheRoot);
                Remove(folder);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("Could not list the model cache {Folder} to remove old versions: {Reason}", cacheRoot, e.Message);
        }
    }

    /// <summary>
    /// Deletes the cached copy of <paramref name="version"/> in <paramref name="cacheRoot"/>, one that failed to load, so
    /// that the next try downloads it again (best effort, logged).
    /// </summary>
    public void RemoveCached(string cacheRoot, string version)
    {
        var folder = Path.Combine(cacheRoot, version);
        if (!Directory.Exists(folder)) return;
        logger.LogWarning("Removing the cached copy of model {ModelVersion} from {Folder}: it could not be loaded", version, cacheRoot);
        Remove(folder);
    }

    // Best effort: a folder left behind costs disk, not the download.
    private void Remove(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("Could not remove the model download folder {Folder}: {Reason}", folder, e.Message);
        }
    }

    private static Dictionary<string, byte[]> ReadFiles(string directory, ModelCard card) =>
        new[] { card.Head, card.Onnx }.OfType<string>().ToDictionary(name => name, name => File.ReadAllBytes(Path.Combine(directory, name)));

    private static string SafeFileName(string name)
    {
        var file = Path.GetFileName(name);
        if (file.Length == 0 || file != name) throw new InvalidDataException($"model file names must be plain file names, not '{name}'");
        return file;
    }
}
