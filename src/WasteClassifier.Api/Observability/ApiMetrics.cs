using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Observability;

namespace WasteClassifier.Api.Observability;

/// <summary>The API's share of <see cref="ClassifierMetrics"/>: uploads taken in (the queue depth: <see cref="QueueGauges"/>).</summary>
public static class ApiMetrics
{
    public static void Submitted(SubmissionResult result)
    {
        if (result.Replayed) return; // a replay stores nothing new
        ClassifierMetrics.ImagesAccepted.Inc(result.Items.Count);
        foreach (var rejected in result.Rejected) ClassifierMetrics.ImagesRejected.WithLabels(rejected.Error).Inc();
    }
}
