using MassTransit;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>Sends <see cref="ClassifyImage"/> for recorded rows to the classify queue, then stamps them as sent.</summary>
public sealed class ClassifyCommandSender(ClassifierDbContext db, ISendEndpointProvider sendEndpoints, MessagingOptions messaging, TimeProvider clock)
{
    public static readonly TimeSpan SendTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The rows' <see cref="Classification.Image"/> must be loaded or given in <paramref name="objectKeys"/>.</summary>
    public async Task SendAsync(IReadOnlyList<Classification> rows, IReadOnlyDictionary<Guid, string>? objectKeys, CancellationToken cancellationToken)
    {
        // A send waits for the broker connection while RabbitMQ is down; bounded, so a submission is answered (the row is
        // recorded and the re-publisher sends it later) instead of hanging until the client gives up.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(SendTimeout);
        try
        {
            var endpoint = await sendEndpoints.GetSendEndpoint(QueueNames.Address(messaging.ClassifyQueue));
            await endpoint.SendBatch(rows.Select(row => new ClassifyImage
            {
                ClassificationId = row.Id,
                ObjectKey = row.Image?.ObjectKey ?? objectKeys![row.ImageId],
                Source = row.Source,
                SubmittedAt = new DateTimeOffset(DateTime.SpecifyKind(row.CreatedAt, DateTimeKind.Utc)),
            }), timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"the broker did not take the message(s) within {SendTimeout.TotalSeconds:F0} s");
        }
        var ids = rows.Select(r => r.Id).ToList();
        var sentAt = clock.GetUtcNow().UtcDateTime;
        await db.Classifications.Where(c => ids.Contains(c.Id)).ExecuteUpdateAsync(s => s.SetProperty(c => c.PublishedAt, sentAt), cancellationToken);
    }
}
