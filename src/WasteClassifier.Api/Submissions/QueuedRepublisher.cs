using Microsoft.EntityFrameworkCore;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// The database row is the source of truth for an accepted image. This loop sends ClassifyImage again for rows
/// still queued that were never sent (the broker was down), and for rows queued or processing for longer than
/// <c>Republish:StuckAfterSeconds</c> since their last send (and, processing, their last claim): a lost message, a
/// worker that died. A worker that sends a message back to the queue stamps its row as sent too. Each row is claimed by
/// its stamp before it is sent, so a row several senders find due (API replicas) goes out once. Workers skip rows already
/// finished, so a duplicate send costs little.
/// </summary>
public sealed class QueuedRepublisher(IServiceScopeFactory scopes, IConfiguration configuration, TimeProvider clock, ILogger<QueuedRepublisher> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = TimeSpan.FromSeconds(configuration.GetValue("Republish:IntervalSeconds", 5));
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(interval, stoppingToken);
                await RepublishAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning("Re-publishing queued classifications failed: {Reason}", e.Message);
            }
        }
    }

    private readonly DateTime _processStartedAt = clock.GetUtcNow().UtcDateTime;
    private bool _recoveredInMemoryQueue;

    public async Task<int> RepublishAsync(CancellationToken cancellationToken)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var now = clock.GetUtcNow().UtcDateTime;
        var unsentBefore = now.AddSeconds(-configuration.GetValue("Republish:UnsentAfterSeconds", 5));
        var stuckBefore = now.AddSeconds(-configuration.GetValue("Republish:StuckAfterSeconds", 600));
        // Duplicate frames are never classified: IngestionHousekeeping gives them their original's result once it is final.
        var unfinished = db.Classifications.Include(c => c.Image)
            .Where(c => (c.Status == ClassificationStatus.Queued || c.Status == ClassificationStatus.Processing) && c.DuplicateOfId == null);

        // An in-memory queue dies with its process: at start, everything a previous run left unfinished is resent.
        var inMemory = scope.ServiceProvider.GetRequiredService<MessagingOptions>().Transport == MessagingTransports.InMemory;
        var recover = inMemory && !_recoveredInMemoryQueue;
        var rows = await (recover
                // Not those this recovery sent already (stamped since the start): each round sent the same oldest 500 again
                // until fewer than 500 were left.
                ? unfinished.Where(c => c.CreatedAt < _processStartedAt && (c.PublishedAt == null || c.PublishedAt < _processStartedAt))
                : unfinished.Where(c => (c.Status == ClassificationStatus.Queued && c.PublishedAt == null && c.CreatedAt < unsentBefore)
                    || (c.Status == ClassificationStatus.Queued && c.PublishedAt < stuckBefore)
                    // The later of its claim and its last send: a resend stamps only PublishedAt, so a row no worker
                    // claims meanwhile was otherwise sent again every round.
                    || (c.Status == ClassificationStatus.Processing && c.StartedAt < stuckBefore && (c.PublishedAt == null || c.PublishedAt < stuckBefore))))
            .OrderBy(c => c.CreatedAt).Take(500).ToListAsync(cancellationToken);
        if (recover && rows.Count < 500) _recoveredInMemoryQueue = true;
        if (rows.Count == 0) return 0;

        // Claimed before the send: another replica's re-publisher, or the load tester's resend, may have read the same rows.
        var sent = await scope.ServiceProvider.GetRequiredService<ClassifyCommandSender>().ClaimAndSendAsync(rows, images: null, cancellationToken);
        if (sent.Count > 0) logger.LogInformation("Re-published {Count} queued classification(s)", sent.Count);
        return sent.Count;
    }
}
