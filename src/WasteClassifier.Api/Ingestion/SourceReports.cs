using Microsoft.EntityFrameworkCore;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Ingestion;

/// <summary>
/// What each source (camera, line) sent and what it saw: counts per source, and the class composition of its
/// classifications per time bucket (by arrival time, UTC). Grouped in SQL on both providers; duplicates count as
/// the frames they are, with their original's class.
/// </summary>
public sealed class SourceReports(ClassifierDbContext db)
{
    public static readonly IReadOnlyList<string> Buckets = ["minute", "hour", "day"];

    /// <summary>The most buckets one composition may span: a source's whole history in minutes could be millions.</summary>
    public const int MaxBuckets = 10_000;

    /// <summary>
    /// The end of a composition that names none: now, or just after the source's last image when that is later (the
    /// clock of this API behind another's). "Just after" is a microsecond: PostgreSQL keeps microseconds, and Npgsql
    /// rounds one tick more back onto the last image, which the range's open end then left out.
    /// </summary>
    public static DateTime DefaultEnd(DateTime lastImage, DateTime now) => lastImage >= now ? lastImage.AddMicroseconds(1) : now;

    public static TimeSpan StepOf(string bucket) => bucket switch { "minute" => TimeSpan.FromMinutes(1), "hour" => TimeSpan.FromHours(1), _ => TimeSpan.FromDays(1) };

    public sealed record SourceSummary(string? Name, long Total, long Queued, long Processing, long Completed, long Failed, long Duplicates,
        DateTimeOffset FirstSeen, DateTimeOffset LastSeen);

    public sealed record ClassShare(long Count, double Share);

    public sealed record Slice(DateTimeOffset Start, DateTimeOffset End, long Total, long Classified, long Pending, long Failed, long Duplicates,
        IReadOnlyDictionary<string, ClassShare> Classes);

    public sealed record Composition(string? Source, DateTimeOffset From, DateTimeOffset To, string Bucket, IReadOnlyList<string> Classes,
        Slice Overall, IReadOnlyList<Slice> Buckets);

    /// <summary>Every source by name, and the images sent without one (null when there are none) apart, under no name.</summary>
    public async Task<(IReadOnlyList<SourceSummary> Sources, SourceSummary? WithoutSource)> ListAsync(CancellationToken cancellationToken)
    {
        var rows = await db.Classifications.GroupBy(c => c.Source)
            .Select(g => new
            {
                Name = g.Key,
                Total = g.LongCount(),
                Queued = g.LongCount(c => c.Status == ClassificationStatus.Queued),
                Processing = g.LongCount(c => c.Status == ClassificationStatus.Processing),
                Completed = g.LongCount(c => c.Status == ClassificationStatus.Completed),
                Failed = g.LongCount(c => c.Status == ClassificationStatus.Failed),
                Duplicates = g.LongCount(c => c.DuplicateOfId != null),
                First = g.Min(c => c.CreatedAt),
                Last = g.Max(c => c.CreatedAt),
            }).ToListAsync(cancellationToken);
        var summaries = rows.OrderBy(r => r.Name, StringComparer.Ordinal)
            .Select(r => new SourceSummary(r.Name, r.Total, r.Queued, r.Processing, r.Completed, r.Failed, r.Duplicates, Utc(r.First), Utc(r.Last)))
            .ToList();
        return (summaries.Where(s => s.Name is not null).ToList(), summaries.FirstOrDefault(s => s.Name is null));
    }

    public Task<bool> ExistsAsync(string source, CancellationToken cancellationToken) =>
        db.Classifications.AnyAsync(c => c.Source == source, cancellationToken);

    /// <param name="source">Null: the images sent without a source.</param>
    public async Task<(DateTime First, DateTime Last)?> SpanAsync(string? source, CancellationToken cancellationToken)
    {
        var span = await db.Classifications.Where(c => c.Source == source).GroupBy(c => 1)
            .Select(g => new { First = g.Min(c => c.CreatedAt), Last = g.Max(c => c.CreatedAt) }).FirstOrDefaultAsync(cancellationToken);
        return span is null ? null : (span.First, span.Last);
    }

    /// <param name="source">Null: the images sent without a source.</param>
    /// <param name="from">Inclusive, UTC.</param>
    /// <param name="to">Exclusive, UTC.</param>
    public async Task<Composition> CompositionAsync(string? source, DateTime from, DateTime to, string bucket, CancellationToken cancellationToken)
    {
        bool byHour = bucket is "hour" or "minute", byMinute = bucket == "minute";
        // Date parts translate on both providers (strftime on SQLite, date_part on PostgreSQL); unused parts group as 0.
        var groups = await db.Classifications
            .Where(c => c.Source == source && c.CreatedAt >= from && c.CreatedAt < to)
            .GroupBy(c => new
            {
                c.CreatedAt.Year,
                c.CreatedAt.Month,
                c.CreatedAt.Day,
                Hour = byHour ? c.CreatedAt.Hour : 0,
                Minute = byMinute ? c.CreatedAt.Minute : 0,
                c.Status,
                c.PredictedClass,
                Duplicate = c.DuplicateOfId != null,
            })
            .Select(g => new { g.Key.Year, g.Key.Month, g.Key.Day, g.Key.Hour, g.Key.Minute, g.Key.Status, g.Key.PredictedClass, g.Key.Duplicate, Count = g.LongCount() })
            .ToListAsync(cancellationToken);

        var counts = groups.Select(g => new Counted(new DateTime(g.Year, g.Month, g.Day, g.Hour, g.Minute, 0, DateTimeKind.Utc), g.Status, g.PredictedClass, g.Duplicate, g.Count)).ToList();
        var classes = counts.Where(c => c.Status == ClassificationStatus.Completed && c.Class is not null).Select(c => c.Class!).Distinct().Order(StringComparer.Ordinal).ToList();
        var step = StepOf(bucket);
        var slices = counts.GroupBy(c => c.Start).OrderBy(g => g.Key).Select(g => SliceOf(g.Key, g.Key + step, g.ToList(), classes)).ToList();
        return new Composition(source, Utc(from), Utc(to), bucket, classes, SliceOf(from, to, counts, classes), slices);
    }

    private sealed record Counted(DateTime Start, string Status, string? Class, bool Duplicate, long Count);

    private static Slice SliceOf(DateTime start, DateTime end, List<Counted> counts, List<string> classes)
    {
        var classified = counts.Where(c => c.Status == ClassificationStatus.Completed && c.Class is not null).ToList();
        var total = classified.Sum(c => c.Count);
        var perClass = classes.ToDictionary(name => name, name =>
        {
            var n = classified.Where(c => c.Class == name).Sum(c => c.Count);
            return new ClassShare(n, total == 0 ? 0 : Math.Round((double)n / total, 6));
        });
        return new Slice(Utc(start), Utc(end), counts.Sum(c => c.Count), total,
            counts.Where(c => !ClassificationStatus.IsFinal(c.Status)).Sum(c => c.Count),
            counts.Where(c => c.Status == ClassificationStatus.Failed).Sum(c => c.Count),
            counts.Where(c => c.Duplicate).Sum(c => c.Count), perClass);
    }

    private static DateTimeOffset Utc(DateTime value) => new(DateTime.SpecifyKind(value, DateTimeKind.Utc));
}
