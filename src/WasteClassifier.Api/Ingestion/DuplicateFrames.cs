using Microsoft.EntityFrameworkCore;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Ingestion;

/// <summary>
/// Cameras resend identical frames (a still belt, a retried upload from a gateway). Within a source's duplicate window
/// a new row for bytes already seen from that source is linked to the earlier classification (the first one in the
/// window that is not itself a duplicate) and takes its result instead of being classified again. A duplicate of a
/// row that is not final yet stays queued, is never sent, and is completed by <see cref="IngestionHousekeeping"/>.
/// </summary>
public sealed class DuplicateFrames(ClassifierDbContext db, IngestionOptions options, TimeProvider clock)
{
    /// <summary>Marks the duplicates among new (not yet saved) rows; returns the rows that still need classifying.</summary>
    public async Task<IReadOnlyList<Classification>> MarkAsync(IReadOnlyList<Classification> rows, int? requestedWindowSeconds, CancellationToken cancellationToken)
    {
        var toClassify = new List<Classification>(rows.Count);
        var now = clock.GetUtcNow().UtcDateTime;
        foreach (var group in rows.GroupBy(r => r.Source))
        {
            var window = options.DuplicateWindowFor(group.Key, requestedWindowSeconds);
            if (window <= TimeSpan.Zero)
            {
                toClassify.AddRange(group);
                continue;
            }
            var source = group.Key;
            var since = now - window;
            var imageIds = group.Select(r => r.ImageId).Distinct().ToList();
            // A failed original is not reused: the new frame gets its own chance.
            var earlier = await db.Classifications.AsNoTracking()
                .Where(c => c.Source == source && imageIds.Contains(c.ImageId) && c.CreatedAt >= since
                    && c.DuplicateOfId == null && c.Status != ClassificationStatus.Failed)
                .OrderBy(c => c.CreatedAt).ToListAsync(cancellationToken);
            var originals = earlier.GroupBy(c => c.ImageId).ToDictionary(g => g.Key, g => g.First());
            foreach (var row in group.OrderBy(r => r.CreatedAt))
            {
                if (originals.TryGetValue(row.ImageId, out var original)) MarkDuplicate(row, original, now);
                else
                {
                    // The first of several equal frames in one request is the original of the others.
                    originals[row.ImageId] = row;
                    toClassify.Add(row);
                }
            }
        }
        return toClassify;
    }

    private static void MarkDuplicate(Classification row, Classification original, DateTime now)
    {
        row.DuplicateOfId = original.Id;
        // Never sent: stamped so the re-publisher does not mistake it for a row the broker missed.
        row.PublishedAt = now;
        if (ClassificationStatus.IsFinal(original.Status)) CopyResult(row, original, now);
    }

    /// <summary>Gives a duplicate the final result of its original (timings stay empty: nothing ran for it).</summary>
    public static void CopyResult(Classification duplicate, Classification original, DateTime now)
    {
        duplicate.Status = original.Status;
        duplicate.PredictedClass = original.PredictedClass;
        duplicate.Confidence = original.Confidence;
        duplicate.AllPredictions = original.AllPredictions;
        duplicate.ModelVersion = original.ModelVersion;
        duplicate.ErrorCode = original.ErrorCode;
        duplicate.Error = original.Error;
        duplicate.CompletedAt = now;
    }
}
