using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Components.Reliability;

/// <summary>
/// A ClassifyImage that failed every retry goes to the error queue and MassTransit publishes Fault&lt;ClassifyImage&gt;:
/// this marks its row failed with the reason, so the client sees why instead of a row stuck in processing.
/// A row already final (another delivery finished it) is left alone.
/// </summary>
public sealed class ClassifyImageFaultConsumer(ClassifierDbContext db, TimeProvider clock, ILogger<ClassifyImageFaultConsumer> logger) : IConsumer<Fault<ClassifyImage>>
{
    public const string ProcessingFailed = "processing_failed";

    public async Task Consume(ConsumeContext<Fault<ClassifyImage>> context)
    {
        var id = context.Message.Message.ClassificationId;
        var exception = context.Message.Exceptions.FirstOrDefault();
        var reason = $"processing failed after {RetryPolicies.ClassifyIntervalsMs.Length} retries: " +
            (exception is null ? "unknown error" : $"{exception.ExceptionType.Split('.').Last()}: {exception.Message}");
        if (reason.Length > 1000) reason = reason[..1000];
        var now = clock.GetUtcNow().UtcDateTime;
        // Attempts is the token a claim's result save checks: bumped, a claim another delivery still holds cannot overwrite
        // this failure with its result (the row finished twice, no event for its final state).
        var updated = await db.Classifications
            .Where(c => c.Id == id && c.Status != ClassificationStatus.Completed && c.Status != ClassificationStatus.Failed)
            .ExecuteUpdateAsync(s => s
                .SetProperty(c => c.Status, ClassificationStatus.Failed)
                .SetProperty(c => c.ErrorCode, ProcessingFailed)
                .SetProperty(c => c.Error, reason)
                .SetProperty(c => c.CompletedAt, now)
                .SetProperty(c => c.Attempts, c => c.Attempts + 1), context.CancellationToken);
        if (updated > 0) logger.LogWarning("Classification {ClassificationId} failed permanently: {Error}", id, reason);
    }
}

/// <summary>Its own queue per classify queue name (so deployments sharing a broker stay apart), retried while the database is away.</summary>
public sealed class ClassifyImageFaultConsumerDefinition : ConsumerDefinition<ClassifyImageFaultConsumer>
{
    public ClassifyImageFaultConsumerDefinition(MessagingOptions messaging) => EndpointName = $"{messaging.ClassifyQueue}-faults";

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<ClassifyImageFaultConsumer> consumerConfigurator, IRegistrationContext context) =>
        endpointConfigurator.UseMessageRetry(retry => retry.Intervals(1000, 5000, 15000, 30000, 60000));
}

public static class RetryPolicies
{
    /// <summary>
    /// Classify retries with backoff, about 35 s in all: long enough to ride out a database, object-store or broker
    /// restart (tested with 15 s outages) before a message is declared failed.
    /// </summary>
    public static readonly int[] ClassifyIntervalsMs = [200, 1000, 3000, 6000, 10000, 15000];
}
