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
