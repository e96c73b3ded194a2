using System.Globalization;

namespace WasteClassifier.Bench;

/// <summary>
/// The model's figures as the workers count them on their <c>/metrics</c>: images classified, and the wall-clock and CPU
/// seconds of the model calls that classified them. Set against the raw model's CPU per image, they show whether running
/// beside decoding, the API and the servers made the model itself dearer (CPU per image above raw: caches, contention) or
/// only made it wait for a core (wall time above CPU).
/// </summary>
public sealed record WorkerModelTime(double Images, double WallSeconds, double CpuSeconds)
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    public double CpuMsPerImage => CpuSeconds * 1000 / Images;

    public double WallMsPerImage => WallSeconds * 1000 / Images;

    /// <summary>Share of the model calls' wall time they spent waiting for a core.</summary>
    public double WaitingShare => 1 - CpuSeconds / WallSeconds;

    /// <summary>Null when a worker does not answer or does not count the model's CPU (not Linux, several intra-op threads).</summary>
    public static async Task<WorkerModelTime?> ScrapeAsync(IEnumerable<Uri> metricsUrls)
    {
        var total = new WorkerModelTime(0, 0, 0);
        foreach (var url in metricsUrls)
        {
            string text;
            try
            {
                text = await Http.GetStringAsync(url);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                Console.Error.WriteLine($"  could not read {url}: {e.Message}");
                return null;
            }
            var images = Sum(text, "wasteclassifier_images_classified_total");
            // A worker that has classified images but has no CPU series does not measure it.
            if (images > 0 && !text.Contains("wasteclassifier_inference_cpu_seconds_total{", StringComparison.Ordinal)) return null;
            total = new WorkerModelTime(
                total.Images + images,
                total.WallSeconds + Sum(text, "wasteclassifier_inference_duration_seconds_sum"),
                total.CpuSeconds + Sum(text, "wasteclassifier_inference_cpu_seconds_total"));
        }
        return total;
    }

    public WorkerModelTime Since(WorkerModelTime start) => new(Images - start.Images, WallSeconds - start.WallSeconds, CpuSeconds - start.CpuSeconds);

    /// <summary>The sum of a metric's series over all its label sets, from Prometheus' text format.</summary>
    private static double Sum(string text, string metric) =>
        text.Split('\n')
            .Where(line => line.StartsWith(metric + "{", StringComparison.Ordinal) || line.StartsWith(metric + " ", StringComparison.Ordinal))
            .Sum(line => double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
}
