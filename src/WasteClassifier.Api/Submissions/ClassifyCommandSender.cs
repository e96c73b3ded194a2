using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;
using NpgsqlTypes;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// Sends <see cref="ClassifyImage"/> for recorded rows to the classify queue. <see cref="Classification.PublishedAt"/> tells
/// the re-publisher which queued rows the broker has: new rows are stamped in their own insert and un-stamped if the send
/// fails (<see cref="StampBeforeInsert"/>, <see cref="SendStampedAsync"/>), which spares an UPDATE per submission; rows
/// sent again are claimed by their stamp before the send (<see cref="ClaimAndSendAsync"/>). Images at hand and small enough travel inside the message
/// (<see cref="MessagingOptions.InlineImageBytes"/>).
/// </summary>
public sealed class ClassifyCommandSender(ClassifierDbContext db, ISendEndpointProvider sendEndpoints, MessagingOptions messaging, TimeProvider clock,
    ILogger<ClassifyCommandSender>? logger = null)
{
    public static readonly TimeSpan SendTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Marks new rows as sent before they are saved; <see cref="SendStampedAsync"/> must follow the insert.</summary>
    public static void StampBeforeInsert(IEnumerable<Classification> rows, DateTime now)
    {
        foreach (var row in rows) row.PublishedAt = now;
    }

    /// <summary>
    /// Sends rows saved with <see cref="StampBeforeInsert"/>. If the send fails, the stamps are cleared so that the
    /// re-publisher sends the rows after <c>Republish:UnsentAfterSeconds</c>; should the process die between the insert
    /// and the send, its rule for messages lost in transit (<c>Republish:StuckAfterSeconds</c>) sends them.
    /// </summary>
    public async Task SendStampedAsync(IReadOnlyList<Classification> rows, IReadOnlyDictionary<Guid, OutgoingImage>? images, CancellationToken cancellationToken)
    {
        try
        {
            await SendOnlyAsync(rows, images, cancellationToken);
        }
        catch
        {
            var ids = rows.Select(r => r.Id).ToList();
            // Not the request's token: a cancelled request must still leave its rows to the re-publisher.
            await db.Classifications.Where(c => ids.Contains(c.Id) && c.Status == ClassificationStatus.Queued)
                .ExecuteUpdateAsync(s => s.SetProperty(c => c.PublishedAt, (DateTime?)null), CancellationToken.None);
            throw;
        }
    }

    /// <summary>
    /// Claims rows for a resend, then sends the rows it won. Each row's <see cref="Classification.PublishedAt"/> must hold the
    /// value read with it: a row is claimed by stamping it as sent only where it still holds that value, in one statement
    /// for all, so of two senders that read the same row (two API replicas, the load tester's resend) one sends it. If the
    /// send or the claim itself fails (or is cancelled), the rows get back the value read where they hold the claim's stamp, so
    /// they stay due as before. Returns the rows sent. The rows' <see cref="Classification.Image"/> must be loaded or given in <paramref name="images"/>.
    /// </summary>
    public Task<IReadOnlyList<Classification>> ClaimAndSendAsync(IReadOnlyList<Classification> rows, IReadOnlyDictionary<Guid, OutgoingImage>? images,
        CancellationToken cancellationToken) => ClaimAndSendAsync(rows, images, NewClaimStamp(), cancellationToken);

    /// <summary>
    /// A stamp for <see cref="ClaimAndSendAsync(IReadOnlyList{Classification}, IReadOnlyDictionary{Guid, OutgoingImage}?, DateTime, CancellationToken)"/>:
    /// now, to the microsecond PostgreSQL keeps, so that a caller finds it again in the rows it reads back.
    /// </summary>
    public DateTime NewClaimStamp()
    {
        var now = clock.GetUtcNow().UtcDateTime;
        return new DateTime(now.Ticks - now.Ticks % 10, DateTimeKind.Utc);
    }

    /// <summary>
    /// As <see cref="ClaimAndSendAsync(IReadOnlyList{Classification}, IReadOnlyDictionary{Guid, OutgoingImage}?, CancellationToken)"/>,
    /// with the claim's stamp (<see cref="NewClaimStamp"/>) known to the caller: should giving it back fail, rows keep it.
    /// </summary>
    public async Task<IReadOnlyList<Classification>> ClaimAndSendAsync(IReadOnlyList<Classification> rows, IReadOnlyDictionary<Guid, OutgoingImage>? images,
        DateTime sentAt, CancellationToken cancellationToken)
    {
        List<Classification> claimed;
        try
        {
            var won = await StampIfUnchangedAsync(rows.Select(r => new StampChange(r.Id, r.PublishedAt, sentAt)).ToList(), cancellationToken);
            claimed = rows.Where(r => won.Contains(r.Id)).ToList();
            if (claimed.Count == 0) return claimed;
            await SendOnlyAsync(claimed, images, cancellationToken);
        }
        catch
        {
            // Every row, not only those won: a claim that failed or was cancelled may have committed all the same. Safe, as
            // only rows still holding this call's stamp change. Not the caller's token: a cancelled call must still leave its
            // rows due.
            try
            {
                await StampIfUnchangedAsync(rows.Select(r => new StampChange(r.Id, sentAt, r.PublishedAt)).ToList(), CancellationToken.None);
            }
            catch (Exception e)
            {
                // The caller's failure is the send's (a TimeoutException tells it the broker may have the rows after all).
                logger?.LogWarning(e, "Could not give back the claim of {Count} row(s) whose resend failed; the re-publisher takes them as sent until they are stuck", rows.Count);
            }
            throw;
        }
        foreach (var row in claimed) row.PublishedAt = sentAt;
        return claimed;
    }

    /// <summary>A row's <see cref="Classification.PublishedAt"/> to set to <paramref name="Stamp"/> if it still holds <paramref name="Expected"/>.</summary>
    private readonly record struct StampChange(Guid Id, DateTime? Expected, DateTime? Stamp);

    /// <summary>Applies the changes of the rows that still hold their expected stamp, at once; returns their ids and those of rows holding the new stamp already.</summary>
    private async Task<HashSet<Guid>> StampIfUnchangedAsync(IReadOnlyList<StampChange> changes, CancellationToken cancellationToken)
    {
        if (changes.Count == 0) return [];
        if (db.Database.IsNpgsql())
        {
            // One UPDATE … RETURNING: the rows it changed are the ones won, whatever another sender stamped meanwhile. A row
            // already holding the new stamp counts as changed: EF's retry runs the statement again when the connection drops
            // after the database committed it, and the rerun must still return the rows the first run stamped.
            var type = db.Model.FindEntityType(typeof(Classification))!;
            var sql = db.GetService<ISqlGenerationHelper>();
            var id = sql.DelimitIdentifier(type.FindProperty(nameof(Classification.Id))!.GetColumnName());
            var publishedAt = sql.DelimitIdentifier(type.FindProperty(nameof(Classification.PublishedAt))!.GetColumnName());
            var statement = $"""
                UPDATE {sql.DelimitIdentifier(type.GetTableName()!)} AS c SET {publishedAt} = r.stamp
                FROM unnest(@ids, @expected, @stamps) AS r(id, expected, stamp)
                WHERE c.{id} = r.id AND (c.{publishedAt} IS NOT DISTINCT FROM r.expected OR c.{publishedAt} IS NOT DISTINCT FROM r.stamp)
                RETURNING c.{id} AS "Value"
                """;
            return (await db.Database.SqlQueryRaw<Guid>(statement,
                new NpgsqlParameter("ids", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { Value = changes.Select(c => c.Id).ToArray() },
                new NpgsqlParameter("expected", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz) { Value = changes.Select(c => c.Expected).ToArray() },
                new NpgsqlParameter("stamps", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz) { Value = changes.Select(c => c.Stamp).ToArray() })
                .ToListAsync(cancellationToken)).ToHashSet();
        }
        // SQLite: read, then update, in one transaction, which Microsoft.Data.Sqlite begins IMMEDIATE: it takes the write lock
        // before the read, so no other stamp commits between the two.
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var ids = changes.Select(c => c.Id).ToList();
        var current = await db.Classifications.Where(c => ids.Contains(c.Id)).Select(c => new { c.Id, c.PublishedAt })
            .ToDictionaryAsync(c => c.Id, c => c.PublishedAt, cancellationToken);
        // As on PostgreSQL, a row already holding the new stamp counts as changed.
        var won = changes.Where(c => current.TryGetValue(c.Id, out var now) && (now == c.Expected || now == c.Stamp)).ToList();
        foreach (var stamp in won.GroupBy(c => c.Stamp))
        {
            var stamped = stamp.Select(c => c.Id).ToList();
            await db.Classifications.Where(c => stamped.Contains(c.Id)).ExecuteUpdateAsync(s => s.SetProperty(c => c.PublishedAt, stamp.Key), cancellationToken);
        }
        await transaction.CommitAsync(cancellationToken);
        return won.Select(c => c.Id).ToHashSet();
    }

    private async Task SendOnlyAsync(IReadOnlyList<Classification> rows, IReadOnlyDictionary<Guid, OutgoingImage>? images, CancellationToken cancellationToken)
    {
        // A send waits for the broker connection while RabbitMQ is down; bounded, so a submission is answered (the row is
        // recorded and the re-publisher sends it later) instead of hanging until the client gives up.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(SendTimeout);
        try
        {
            var endpoint = await sendEndpoints.GetSendEndpoint(QueueNames.Address(messaging.ClassifyQueue));
            await endpoint.SendBatch(rows.Select(row =>
            {
                var image = images?.GetValueOrDefault(row.ImageId);
                return new ClassifyImage
                {
                    ClassificationId = row.Id,
                    ObjectKey = row.Image?.ObjectKey ?? image?.ObjectKey ?? throw new ArgumentException($"no object key for image {row.ImageId}", nameof(images)),
                    ImageBytes = image?.Content is { Length: > 0 } bytes && bytes.Length <= messaging.InlineImageBytes ? bytes : null,
                    Source = row.Source,
                    SubmittedAt = new DateTimeOffset(DateTime.SpecifyKind(row.CreatedAt, DateTimeKind.Utc)),
                };
            }), timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"the broker did not take the message(s) within {SendTimeout.TotalSeconds:F0} s");
        }
    }
}

/// <summary>What a classify message can carry of its image: the object key, and the bytes where the sender has them.</summary>
public sealed record OutgoingImage(string ObjectKey, byte[]? Content = null)
{
    /// <summary>The images of files just taken in, by image id (one per distinct content).</summary>
    public static Dictionary<Guid, OutgoingImage> Of(IEnumerable<ImageIntake.Accepted> accepted) =>
        accepted.DistinctBy(a => a.Image.Id).ToDictionary(a => a.Image.Id, a => new OutgoingImage(a.Image.ObjectKey, a.File.Content));
}
