using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.LoadTesting.Targets;

/// <summary>
/// Removes what a run created: its classifications (found by the run's source tag), and the images and objects no other
/// classification uses that appeared during the run (images are shared by content hash, so older ones stay). An image a
/// labelled sample uses (an operator's label on one of the run's results, or a training upload deduplicated onto it) is
/// kept, object and row: deleting the row would cascade to the sample. Images a run stored without classifying them (queue mode stores its whole image set first) are passed in
/// <c>storedImageIds</c>, under the same rules; queue mode names them after the run (<see cref="StoredFileName"/>), so a later cleanup finds them too.
/// </summary>
/// <remarks>
/// The objects go first, then the rows of the images whose objects are gone: the rows are how a later
/// <c>--cleanup --source</c> finds the objects, so an image whose object could not be deleted keeps its row and its
/// classifications, and running the cleanup again finishes the job.
/// </remarks>
public static class RunCleanup
{
    /// <param name="ImagesLeft">Images kept, with their classifications, because their objects could not be deleted.</param>
    /// <param name="Failure">Why the first of those could not be deleted.</param>
    /// <param name="ImagesKeptForSamples">Images of the run kept, object and row, because labelled samples use them.</param>
    public sealed record Removed(int Classifications, int Images, int ImagesLeft = 0, string? Failure = null, int ImagesKeptForSamples = 0);

    /// <summary>Only sources the load tester names can be removed after the fact: never a camera's or a line's.</summary>
    public const string SourcePrefix = "loadtest-";

    /// <summary>After this many failed deletes in a row the store is taken to be away: the rest are not tried (each could take its timeout).</summary>
    public const int MaxFailedDeletesInARow = 3;

    /// <summary>Ids per statement: each is an SQL parameter, and SQLite refuses a statement of more than 32,766.</summary>
    internal const int IdsPerStatement = 1000;

    private sealed record Candidate(Guid Id, string ObjectKey, bool Labelled);

    /// <summary>
    /// The file name queue mode records for an image it stores: the run's source first, so that a later cleanup finds the
    /// images it stored without classifying them (object keys are content hashes, and the images table has no source). A
    /// source has no space, so the source and a space begin the names of its run's images alone. The file's name is made safe
    /// first, as the intake makes every name safe: made safe after the prefix, a name holding a path ("a\\b.jpg") lost it.
    /// </summary>
    public static string StoredFileName(string source, string fileName) => $"{StoredFileNamePrefix(source)}{FileNames.Sanitize(fileName) ?? "image"}";

    private static string StoredFileNamePrefix(string source) => $"{source} ";

    /// <summary>
    /// Removes an earlier run, found by its source alone (a run killed before it could clean up, or one whose cleanup
    /// reached the wrong database, or left objects the store failed to delete): its classifications, the images no other
    /// classification uses that appeared from a minute before its first row on, and the images queue mode stored for it
    /// (<see cref="StoredFileName"/>), classified or not. Null when nothing carries the source.
    /// </summary>
    public static async Task<Removed?> RemoveEarlierRunAsync(IServiceProvider services, string source, CancellationToken cancellationToken)
    {
        if (!source.StartsWith(SourcePrefix, StringComparison.Ordinal))
            throw new ArgumentException($"only a load test's source ({SourcePrefix}…) can be removed this way, not '{source}'");
        DateTime? firstRow;
        List<(Guid Id, DateTime CreatedAt)> stored;
        using (var scope = services.CreateScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            firstRow = await db.Classifications.Where(c => c.Source == source).MinAsync(c => (DateTime?)c.CreatedAt, cancellationToken);
            // Not indexed: a scan of the images, once per cleanup run by hand.
            var prefix = StoredFileNamePrefix(source);
            stored = (await db.Images.Where(i => i.FileName != null && i.FileName.StartsWith(prefix)).Select(i => new { i.Id, i.CreatedAt })
                .ToListAsync(cancellationToken)).Select(i => (i.Id, i.CreatedAt)).ToList();
        }
        // An upload's image row is written a moment before its classification row.
        var from = new[] { firstRow?.AddMinutes(-1), stored.Count == 0 ? null : (DateTime?)stored.Min(i => i.CreatedAt) }.Min();
        return from is { } since ? await RemoveAsync(services, source, since, cancellationToken, stored.Select(i => i.Id).ToList()) : null;
    }

    public static async Task<Removed> RemoveAsync(IServiceProvider services, string source, DateTime runStartedUtc, CancellationToken cancellationToken,
        IReadOnlyCollection<Guid>? storedImageIds = null)
    {
        using var scope = services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var classified = await db.Classifications.Where(c => c.Source == source).Select(c => c.ImageId).Distinct().ToListAsync(cancellationToken);
        var imageIds = classified.Union(storedImageIds ?? []).ToList();
        var candidates = new List<Candidate>(imageIds.Count);
        foreach (var chunk in imageIds.Chunk(IdsPerStatement))
            candidates.AddRange(await db.Images.AsNoTracking()
                .Where(i => chunk.Contains(i.Id) && i.CreatedAt >= runStartedUtc && !db.Classifications.Any(c => c.ImageId == i.Id && c.Source != source))
                .Select(i => new Candidate(i.Id, i.ObjectKey, db.LabelledSamples.Any(s => s.ImageId == i.Id)))
                .ToListAsync(cancellationToken));
        var orphans = candidates.Where(i => !i.Labelled).ToList();

        var store = scope.ServiceProvider.GetRequiredService<IObjectStore>();
        var gone = new List<Guid>(orphans.Count);
        var left = new List<Guid>();
        string? failure = null;
        var failedInARow = 0;
        try
        {
            // A missing folder store root (a wrong DataDirectory, a volume not mounted) answers every delete "no such
            // folder", which counts as gone: every row would go and the objects stay where the store really is.
            if (orphans.Count > 0) await store.CheckAsync(cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            failure = $"object store: {e.Message}";
            failedInARow = MaxFailedDeletesInARow;
        }
        foreach (var image in orphans)
        {
            if (failedInARow >= MaxFailedDeletesInARow)
            {
                left.Add(image.Id);
                continue;
            }
            try
            {
                await store.DeleteAsync(image.ObjectKey, cancellationToken);
                gone.Add(image.Id);
                failedInARow = 0;
            }
            catch (Exception e) when (IsNotFound(e))
            {
                gone.Add(image.Id);
                failedInARow = 0;
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                failure ??= $"{image.ObjectKey}: {e.Message}";
                left.Add(image.Id);
                failedInARow++;
            }
        }

        // One transaction: stopped between the two, classifications would be gone and their images' rows left where
        // no later cleanup finds them.
        var (classifications, images) = await db.Database.CreateExecutionStrategy().ExecuteAsync(async () =>
        {
            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            int deletedClassifications = 0, deletedImages = 0;
            if (left.Count == 0)
                deletedClassifications = await db.Classifications.Where(c => c.Source == source).ExecuteDeleteAsync(cancellationToken);
            else
            {
                // Those of the images kept stay; one the run added since it was read stays too, for --cleanup --source.
                var kept = left.ToHashSet();
                foreach (var chunk in classified.Where(id => !kept.Contains(id)).Chunk(IdsPerStatement))
                    deletedClassifications += await db.Classifications.Where(c => c.Source == source && chunk.Contains(c.ImageId)).ExecuteDeleteAsync(cancellationToken);
            }
            // A sample labelled meanwhile keeps its image's row too (its object is gone by now, but the sample stays).
            foreach (var chunk in gone.Chunk(IdsPerStatement))
                deletedImages += await db.Images.Where(i => chunk.Contains(i.Id) && !db.Classifications.Any(c => c.ImageId == i.Id)
                    && !db.LabelledSamples.Any(s => s.ImageId == i.Id)).ExecuteDeleteAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            return (deletedClassifications, deletedImages);
        });
        return new Removed(classifications, images, left.Count, failure, candidates.Count - orphans.Count);
    }

    /// <summary>
    /// An object that is not there counts as deleted (an earlier cleanup deleted it, then failed before the rows); a
    /// missing folder too, the store's root being there (checked first).
    /// </summary>
    private static bool IsNotFound(Exception e) =>
        e is Minio.Exceptions.ObjectNotFoundException or FileNotFoundException or DirectoryNotFoundException
            or HttpRequestException { StatusCode: HttpStatusCode.NotFound };
}
