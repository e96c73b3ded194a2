using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Observability;

/// <summary>The API's share of <see cref="ClassifierMetrics"/>: uploads taken in, and the queue depth read at scrape time.</summary>
public static class ApiMetrics
{
    public static void Submitted(SubmissionResult result)
    {
        if (result.Replayed) return; // a replay stores nothing new
        ClassifierMetrics.ImagesAccepted.Inc(result.Items.Count);
        foreach (var rejected in result.Rejected) ClassifierMetrics.ImagesRejected.WithLabels(rejected.Error).Inc();
    }

    /// <summary>
    /// Rows per status from the database (covers every API and worker; "queued" is the queue depth). A failing
    /// database leaves the last values: the scrape itself must still answer.
    /// </summary>
    public static async Task RefreshQueueGaugesAsync(HttpContext context)
    {
        try
        {
            var db = context.RequestServices.GetRequiredService<ClassifierDbContext>();
            var counts = await db.Classifications.Where(c => c.Status == ClassificationStatus.Queued || c.Status == ClassificationStatus.Processing)
                .GroupBy(c => c.Status).Select(g => new { g.Key, Count = g.LongCount() }).ToDictionaryAsync(g => g.Key, g => g.Count, context.RequestAborted);
            foreach (var status in new[] { ClassificationStatus.Queued, ClassificationStatus.Processing })
                ClassifierMetrics.Classifications.WithLabels(status).Set(counts.GetValueOrDefault(status));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            context.RequestServices.GetRequiredService<ILogger<SubmissionResult>>().LogWarning("Queue depth not refreshed: {Reason}", e.Message);
        }
    }
}
