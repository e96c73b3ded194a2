using MassTransit;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// Sends <see cref="ClassifyImage"/> for recorded rows to the classify queue. <see cref="Classification.PublishedAt"/> tells
/// the re-publisher which queued rows the broker has: new rows are stamped in their own insert and un-stamped if the send
/// fails (<see cref="StampBeforeInsert"/>, <see cref="SendStampedAsync"/>), which spares an UPDATE per submission; rows
/// sent again are stamped after the send (<see cref="SendAsync"/>). Images at hand and small enough travel inside the message
/// (<see cref="MessagingOptions.InlineImageBytes"/>).
/// </summary>
public sealed class ClassifyCommandSender(ClassifierDbContext db, ISendEndpointProvider sendEndpoints, MessagingOptions messaging, TimeProvider clock)
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

    /// <summary>Sends, then stamps the rows as sent. The rows' <see cref="Classification.Image"/> must be loaded or given in <paramref name="images"/>.</summary>
    public async Task SendAsync(IReadOnlyList<Classification> rows, IReadOnlyDictionary<Guid, OutgoingImage>? images, CancellationToken cancellationToken)
    {
        await SendOnlyAsync(rows, images, cancellationToken);
        var ids = rows.Select(r => r.Id).ToList();
        var sentAt = clock.GetUtcNow().UtcDateTime;
        await db.Classifications.Where(c => ids.Contains(c.Id)).ExecuteUpdateAsync(s => s.SetProperty(c => c.PublishedAt, sentAt), cancellationToken);
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
