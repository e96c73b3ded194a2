using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Observability;

/// <summary>
/// Each process exports the metric families it produces (README, Observability), not every family of the service: a
/// trainer exported the worker's histograms, all 0, and a worker the API's counters.
/// </summary>
public sealed class ProcessMetricsTests
{
    [IntegrationFact]
    public async Task Metrics_ApiWorkerAndTrainer_EachExportsItsOwnFamiliesOnly()
    {
        var settings = await TestServices.DeploymentSettingsAsync("roles");
        try
        {
            await using var api = new ApiFactory(settings);
            var http = api.CreateClient();
            await http.GetAsync("/v1/classifications"); // an API request, for its HTTP families
            var workerPort = ObservabilityListenerTests.FreePort();
            await using var worker = await ServiceProcess.StartWorkerAsync(new Dictionary<string, string?>(settings)
            {
                ["Worker:Id"] = $"worker-roles-{TestServices.NewSuffix()}",
                ["Metrics:Port"] = workerPort.ToString(),
                ["Metrics:Host"] = "127.0.0.1",
            });
            var trainerPort = ObservabilityListenerTests.FreePort();
            await using var trainer = await ServiceProcess.StartTrainerAsync(new Dictionary<string, string?>(settings)
            {
                ["Metrics:Port"] = trainerPort.ToString(),
                ["Metrics:Host"] = "127.0.0.1",
            });
            using var scraper = new HttpClient();

            var apiFamilies = Families(await http.GetStringAsync("/metrics"));
            var workerFamilies = Families(await scraper.GetStringAsync($"http://127.0.0.1:{workerPort}/metrics"));
            var trainerFamilies = Families(await scraper.GetStringAsync($"http://127.0.0.1:{trainerPort}/metrics"));

            string[] apiOwn = ["wasteclassifier_images_accepted_total", "wasteclassifier_classifications", "http_requests_received_total"];
            string[] workerOwn = ["wasteclassifier_batch_size", "wasteclassifier_end_to_end_duration_seconds", "wasteclassifier_queue_wait_duration_seconds"];
            const string training = "wasteclassifier_training_job_duration_seconds";
            Exports(apiFamilies, own: [.. apiOwn, training], notOwn: workerOwn);
            Exports(workerFamilies, own: workerOwn, notOwn: [.. apiOwn, training]);
            Exports(trainerFamilies, own: [training], notOwn: [.. apiOwn, .. workerOwn]);
            // The process and runtime metrics stay with every process.
            Assert.All([apiFamilies, workerFamilies, trainerFamilies], families => Assert.Contains("process_cpu_seconds_total", families));
        }
        finally
        {
            await TestServices.DeleteClassifyQueuesAsync(settings["Messaging:ClassifyQueue"]!);
            await TestServices.DeleteTrainQueueAsync(settings["Messaging:TrainQueue"]!);
            await TestServices.DropDatabaseAsync(settings["Database:ConnectionString"]!);
        }
    }

    private static void Exports(HashSet<string> families, string[] own, string[] notOwn)
    {
        Assert.All(own, family => Assert.Contains(family, families));
        Assert.All(notOwn, family => Assert.DoesNotContain(family, families));
    }

    /// <summary>The metric families a scrape declares (its "# TYPE name type" lines).</summary>
    private static HashSet<string> Families(string text) =>
        text.Split('\n').Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal)).Select(l => l.Split(' ')[2]).ToHashSet();
}
