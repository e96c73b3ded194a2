using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.LoadTesting.Targets;

/// <summary>
/// Removes what a run created: its classifications (found by the run's source tag), then the images and objects
/// no other classification uses that appeared during the run (images are shared by content hash, so older ones stay).
/// Images a run stored without classifying them (queue mode stores its whole image set first) are passed in
/// <c>storedImageIds</c>, under the same rules.
/// </summary>
public static class RunCleanup
{
    public sealed record Removed(int Classifications, int Images);

    /// <summary>Only sources the load tester names can be removed after the fact: never a camera's or a line's.</summary>
    public const string SourcePrefix = "loadtest-";

    /// <summary>
    /// Removes an earlier run, found by its source alone (a run killed before it could clean up, or one whose cleanup
    /// reached the wrong database): its classifications, and the images no other classification uses that appeared from a
    /// minute before its first row on. Null when no classification carries the source.
    /// </summary>
    public static async Task<Removed?> RemoveEarlierRunAsync(IServiceProvider services, string source, CancellationToken cancellationToken)
    {
        if (!source.StartsWith(SourcePrefix, StringComparison.Ordinal))
            throw new ArgumentException($"only a load test's source ({SourcePrefix}…) can be removed this way, not '{source}'");
        DateTime? firstRow;
        using (var scope = services.CreateScope())
            firstRow = await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Classifications
                .Where(c => c.Source == source).MinAsync(c => (DateTime?)c.CreatedAt, cancellationToken);
        // An upload's image row is written a moment before its classification row.
        return firstRow is { } first ? await RemoveAsync(services, source, first.AddMinutes(-1), cancellationToken) : null;
    }

    public static async Task<Removed> RemoveAsync(IServiceProvider services, string source, DateTime runStartedUtc, CancellationToken cancellationToken,
        IReadOnlyCollection<Guid>? storedImageIds = null)
    {
        using var scope = services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var classified = await db.Classifications.Where(c => c.Source == source).Select(c => c.ImageId).Distinct().ToListAsync(cancellationToken);
        var imageIds = classified.Union(storedImageIds ?? []).ToList();
        var classifications = await db.Classifications.Where(c => c.Source == source).ExecuteDeleteAsync(cancellationToken);
        var orphans = await db.Images
            .Where(i => imageIds.Contains(i.Id) && i.CreatedAt >= runStartedUtc && !db.Classifications.Any(c => c.ImageId == i.Id))
            .ToListAsync(cancellationToken);
        db.Images.RemoveRange(orphans);
        await db.SaveChangesAsync(cancellationToken);
        var store = scope.ServiceProvider.GetRequiredService<IObjectStore>();
        foreach (var image in orphans) await store.DeleteAsync(image.ObjectKey, cancellationToken);
        return new Removed(classifications, orphans.Count);
    }
}
