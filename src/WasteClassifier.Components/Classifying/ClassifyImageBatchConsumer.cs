using System.Globalization;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WasteClassifier.Components.Reliability;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Components.Classifying;

/// <summary>
/// Receives <see cref="ClassifyImage"/> and hands it to the <see cref="ClassificationBatchScheduler"/>, which batches it
/// with whatever else is waiting; the message is acknowledged when its batch's commit returns. A batch this worker cannot
/// classify at all (<see cref="WorkerFaultException"/>: no model, store access in doubt) is neither retried here nor
/// faulted, which would fail its rows: after a pause each message is sent back to the end of the queue, for any worker,
/// until <see cref="GivesUp"/>; then its row fails. A message whose row is final already is acknowledged.
/// </summary>
public sealed class ClassifyImageBatchConsumer : IConsumer<ClassifyImage>
{
    /// <summary>
    /// How long a message waits here before it goes back: a worker without a model would otherwise take its own messages
    /// back at once, over and over (RabbitMQ needs a plugin for delayed messages). Healthy workers meanwhile take the rest.
    /// </summary>
    public static readonly TimeSpan SendBackDelay = TimeSpan.FromSeconds(3);

    // How long a send back may take, the worker stopping included.
    private static readonly TimeSpan SendBackTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The header counting a message's sends back to the queue.</summary>
    public const string SentBackHeader = "wc-sent-back";

    /// <summary>The header holding when the message was first sent back (UTC, ISO 8601).</summary>
    public const string FirstSentBackHeader = "wc-first-sent-back";

    /// <summary>
    /// Sends back after which a worker fault fails the row whatever the time (about 5 minutes at <see cref="SendBackDelay"/>
    /// on a short queue): with no worker able to classify it (no model anywhere, an image missing on workers with nothing
    /// to check their access with), the message went round for ever and its row stayed queued.
    /// </summary>
    public const int MaxSendBacks = 100;

    /// <summary>
    /// Sends back after which a worker fault fails the row once <see cref="GiveUpAfter"/> has passed since the first: a
    /// message behind a backlog takes far longer than the pause to come round, so <see cref="MaxSendBacks"/> alone could
    /// take hours. Not fewer, so that a message that met one faulty worker before and after a long wait is not given up.
    /// </summary>
    public const int MinSendBacks = 10;

    /// <summary>
    /// Time since the first send-back after which <see cref="MinSendBacks"/> sends back are enough to give up, unless an image
    /// was classified meanwhile: then some worker can classify, and a message that met only faulty workers on its rounds
    /// (a backlog with a few of them among healthy ones) is not failed before <see cref="MaxSendBacks"/>.
    /// </summary>
    public static readonly TimeSpan GiveUpAfter = TimeSpan.FromMinutes(5);

    private readonly ClassificationBatchScheduler _scheduler;
    private readonly IServiceProvider _services;
    private readonly ILogger<ClassifyImageBatchConsumer> _logger;
    private readonly TimeSpan _sendBackDelay;

    public ClassifyImageBatchConsumer(ClassificationBatchScheduler scheduler, IServiceProvider services, ILogger<ClassifyImageBatchConsumer> logger)
        : this(scheduler, services, logger, SendBackDelay)
    {
    }

    /// <summary>With another pause before a message goes back (tests).</summary>
    internal ClassifyImageBatchConsumer(ClassificationBatchScheduler scheduler, IServiceProvider services, ILogger<ClassifyImageBatchConsumer> logger,
        TimeSpan sendBackDelay)
    {
        _scheduler = scheduler;
        _services = services;
        _logger = logger;
        _sendBackDelay = sendBackDelay;
    }

    public async Task Consume(ConsumeContext<ClassifyImage> context)
    {
        try
        {
            await _scheduler.ClassifyAsync(context.Message, context.MessageId, context.CancellationToken);
        }
        catch (WorkerFaultException fault)
        {
            if (fault.Settled.Contains(context.Message.ClassificationId))
            {
                // Its row is final (or gone): a copy sent back would only go round to the limit.
                _logger.LogDebug("Classification {ClassificationId} is final already; its message is not sent back", context.Message.ClassificationId);
                return;
            }
            var sentBack = context.Headers.Get<int>(SentBackHeader) ?? 0;
            var now = _services.GetRequiredService<TimeProvider>().GetUtcNow();
            var firstSentBack = FirstSentBack(context.Headers) ?? now;
            if (GivesUp(sentBack, now - firstSentBack)
                && (sentBack >= MaxSendBacks || !await AnyClassifiedSinceAsync(firstSentBack, context.CancellationToken)))
            {
                await GiveUpAsync(context.Message.ClassificationId, sentBack, fault, context.CancellationToken);
                return;
            }
            // The batch's log line says why. Sent before this delivery is acknowledged: a stop in between leaves a duplicate,
            // which the claim skips, never a lost image.
            try
            {
                await Task.Delay(_sendBackDelay, context.CancellationToken);
            }
            catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
            {
                // A shutdown: the rest of the pause is skipped. Thrown, the cancellation could go through retries to the
                // error queue and a Fault, which fails the row.
            }
            // A timeout of its own: the delivery's token may be cancelled already.
            using var timeout = new CancellationTokenSource(SendBackTimeout);
            var queue = await context.GetSendEndpoint(context.ReceiveContext.InputAddress);
            await queue.Send(context.Message, send =>
            {
                send.Headers.Set(SentBackHeader, sentBack + 1);
                send.Headers.Set(FirstSentBackHeader, firstSentBack.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
            }, timeout.Token);
            _logger.LogDebug("Classification {ClassificationId} sent back to the queue for another worker", context.Message.ClassificationId);
        }
    }

    /// <summary>
    /// Whether a message sent back <paramref name="sentBack"/> times, the first <paramref name="sinceFirst"/> ago, has gone
    /// round enough: <see cref="MaxSendBacks"/> times, or <see cref="MinSendBacks"/> times over <see cref="GiveUpAfter"/>.
    /// </summary>
    public static bool GivesUp(int sentBack, TimeSpan sinceFirst) =>
        sentBack >= MaxSendBacks || (sentBack >= MinSendBacks && sinceFirst >= GiveUpAfter);

    /// <summary>Whether any image was classified since <paramref name="since"/>: one query, at the give-up point only.</summary>
    private Task<bool> AnyClassifiedSinceAsync(DateTimeOffset since, CancellationToken cancellationToken)
    {
        var after = since.UtcDateTime;
        return _services.GetRequiredService<ClassifierDbContext>().Classifications
            .AnyAsync(c => c.Status == ClassificationStatus.Completed && c.CompletedAt > after, cancellationToken);
    }

    private static DateTimeOffset? FirstSentBack(Headers headers) =>
        headers.Get<string>(FirstSentBackHeader) is { } text
            && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var at)
            ? at
            : null;

    /// <summary>
    /// Fails the row of a message no worker could classify (<see cref="GivesUp"/>): with its own read's error
    /// when the store refused it (403) or had it not (404), else <see cref="ClassifyImageFaultConsumer.ProcessingFailed"/>
    /// naming the fault. Only a queued row: a final one is left alone, and a processing one is another worker's claim,
    /// which failing would supersede (attempts + 1) however good its result; the message is acknowledged either way.
    /// Attempts is bumped, as a claim's result save checks it.
    /// </summary>
    private async Task GiveUpAsync(Guid id, int sentBack, WorkerFaultException fault, CancellationToken cancellationToken)
    {
        var error = fault.RowErrors.GetValueOrDefault(id)
            ?? new RowError(ClassifyImageFaultConsumer.ProcessingFailed, $"no worker could classify it ({sentBack} times sent back to the queue): {fault.Message}");
        var reason = error.Message.Length > 1000 ? error.Message[..1000] : error.Message;
        var db = _services.GetRequiredService<ClassifierDbContext>();
        var workerId = _services.GetRequiredService<WorkerOptions>().Id;
        var now = _services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime;
        var updated = await db.Classifications
            .Where(c => c.Id == id && c.Status == ClassificationStatus.Queued)
            .ExecuteUpdateAsync(s => s
                .SetProperty(c => c.Status, ClassificationStatus.Failed)
                .SetProperty(c => c.ErrorCode, error.Code)
                .SetProperty(c => c.Error, reason)
                .SetProperty(c => c.WorkerId, workerId)
                .SetProperty(c => c.CompletedAt, now)
                .SetProperty(c => c.Attempts, c => c.Attempts + 1), cancellationToken);
        if (updated == 0) return;
        _logger.LogWarning("Classification {ClassificationId} failed: {ErrorCode} {Error}", id, error.Code, reason);
        await _services.GetRequiredService<ClassificationsFinishedNotifier>().NotifyAsync([id], cancellationToken);
    }
}
