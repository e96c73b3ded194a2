using MassTransit;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>Sends <see cref="ClassifyImage"/> for recorded rows to the classify queue, then stamps them as sent.</summary>
public sealed class ClassifyCommandSender(ClassifierDbContext db, ISendEndpointProvider sendEndpoints, MessagingOptions messaging, TimeProvider clock)
{
    /// <summary>The rows' <see cref="Classification.Image"/> must be loaded or given in <paramref name="objectKeys"/>.</summary>
    public async Task SendAsync(IReadOnlyList<Classification> rows, IReadOnlyDictionary<Guid, string>? objectKeys, CancellationToken cancellationToken)
    {
        var endpoint = await sendEndpoints.GetSendEndpoint(QueueNames.Address(messaging.ClassifyQueue));
        await endpoint.SendBatch(rows.Select(row => new ClassifyImage
        {
            ClassificationId = row.Id,
            ObjectKey = row.Image?.ObjectKey ?? objectKeys![row.ImageId],
            Source = row.Source,
            SubmittedAt = new DateTimeOffset(DateTime.SpecifyKind(row.CreatedAt, DateTimeKind.Utc)),
        }), cancellationToken);
        var ids = rows.Select(r => r.Id).ToList();
        var sentAt = clock.GetUtcNow().UtcDateTime;
        await db.Classifications.Where(c => ids.Contains(c.Id)).ExecuteUpdateAsync(s => s.SetProperty(c => c.PublishedAt, sentAt), cancellationToken);
    }
}
