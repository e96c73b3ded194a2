using MassTransit;
using Microsoft.Extensions.Logging;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.Components.Classifying;

/// <summary>Publishes <see cref="ClassificationsFinished"/> once a batch has committed, so the APIs need not poll for it.</summary>
public sealed class ClassificationsFinishedNotifier(IPublishEndpoint publisher, TimeProvider clock, ILogger<ClassificationsFinishedNotifier> logger)
{
    // The results are committed already; a slow broker must not hold the batch (and its messages) for long.
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromSeconds(2);

    public async Task NotifyAsync(IReadOnlyList<Guid> classificationIds, CancellationToken cancellationToken)
    {
        if (classificationIds.Count == 0) return;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(PublishTimeout);
        try
        {
            await publisher.Publish(new ClassificationsFinished { ClassificationIds = classificationIds, FinishedAt = clock.GetUtcNow() }, timeout.Token);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            // Waiting requests still learn of the results from the API's own check of the database, only later.
            logger.LogWarning("Could not announce {Count} finished classification(s): {Reason}", classificationIds.Count, e.Message);
        }
    }
}
