using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>
/// Prometheus metrics (static) and memory are process-wide, and the test process hosts several services at once: tests
/// that measure them run in a collection of their own, with nothing beside them, against a fresh embedded host.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessMetricsCollection
{
    public const string Name = "process-metrics";
}

[Collection(ProcessMetricsCollection.Name)]
public sealed class PrometheusMetricsTests(EmbeddedApiFixture fixture) : IClassFixture<EmbeddedApiFixture>
{
    [Fact]
    public async Task Metrics_AfterClassifications_ExposeCountersHistogramsQueueDepthAndModelInUse()
    {
        var ids = await fixture.Client.SubmitFilesAsync(Dataset.Sample(perClass: 1).Take(2).Select(s => s.Path), source: "metrics-line");
        var results = await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(2));
        var version = results[0]["model_version"]!.GetValue<string>();

        var response = await fixture.Client.Http.GetAsync("/metrics");
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.True(Counter(text, "wasteclassifier_images_accepted_total") >= 2, text);
        Assert.True(Counter(text, $"wasteclassifier_images_classified_total{{model_version=\"{version}\"}}") >= 2);
        Assert.True(Counter(text, "wasteclassifier_batch_size_count") >= 1);
        Assert.True(Counter(text, "wasteclassifier_end_to_end_duration_seconds_count") >= 2);
        Assert.Contains($"wasteclassifier_inference_duration_seconds_bucket{{model_version=\"{version}\",le=\"+Inf\"}}", text);
        if (OperatingSystem.IsLinux())
        {
            // The model's CPU time: some, and no more than the same calls' wall time.
            var cpu = Counter(text, $"wasteclassifier_inference_cpu_seconds_total{{model_version=\"{version}\"}}");
            Assert.InRange(cpu, 1e-6, Counter(text, $"wasteclassifier_inference_duration_seconds_sum{{model_version=\"{version}\"}}") + 0.001);
        }
        Assert.Equal(1, Counter(text, $"wasteclassifier_model_in_use{{model_version=\"{version}\"}}"));
        Assert.Contains("wasteclassifier_classifications{status=\"queued\"}", text);
        Assert.Contains("http_requests_received_total", text);
        Assert.Contains("# TYPE wasteclassifier_training_job_duration_seconds histogram", text);
    }

    [Fact]
    public async Task Metrics_DirectUploadCommit_CountsItsImagesAsAccepted()
    {
        var before = Counter(await fixture.Client.Http.GetStringAsync("/metrics"), "wasteclassifier_images_accepted_total");
        var files = Dataset.Sample(perClass: 1).Skip(2).Take(2).Select(s => (Path.GetFileName(s.Path), File.ReadAllBytes(s.Path))).ToList();

        await Ingestion.DirectUploadFlow.RunAsync(fixture.Client.Http, fixture.Client.Http, files, "metrics-direct");

        Assert.Equal(before + 2, Counter(await fixture.Client.Http.GetStringAsync("/metrics"), "wasteclassifier_images_accepted_total"));
    }

    [Fact]
    public async Task Metrics_HeadRequest_CountedUnderHeadNotGet()
    {
        // HEAD is routed as GET (HeadRequests); the metrics must still say what the client sent.
        var before = await fixture.Client.Http.GetStringAsync("/metrics");

        using (var head = await fixture.Client.Http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/health/live")))
            Assert.Equal(System.Net.HttpStatusCode.OK, head.StatusCode);

        var after = await fixture.Client.Http.GetStringAsync("/metrics");
        Assert.Equal(Requests(before, "HEAD") + 1, Requests(after, "HEAD"));
        Assert.Equal(Requests(before, "GET"), Requests(after, "GET"));
    }

    [Fact]
    public async Task Metrics_HeadRequestInProgress_GaugedUnderHeadNotGet()
    {
        // A long poll of a row that stays queued holds the HEAD while /metrics is read; routed as GET, it is gauged as HEAD.
        var id = await TestRows.QueuedClassificationAsync(fixture.Factory.Services, "head-in-progress");
        using var client = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var head = fixture.Client.Http.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"/v1/classifications/{id}?wait=30"), client.Token);

        // Up to 25 s for the HEAD to be under way (a cold host on a loaded machine is slow to start it), within its 30 s hold.
        var deadline = DateTime.UtcNow.AddSeconds(25);
        string text;
        while (InProgress(text = await fixture.Client.Http.GetStringAsync("/metrics"), "HEAD") < 1 && DateTime.UtcNow < deadline)
            await Task.Delay(100);
        // Ended: the test server may answer the aborted request (499) rather than throw.
        await client.CancelAsync();
        try
        {
            (await head).Dispose();
        }
        catch (OperationCanceledException)
        {
        }

        Assert.Equal(1, InProgress(text, "HEAD"));
        Assert.Equal(0, InProgress(text, "GET"));
    }

    /// <summary>Requests to GET /v1/classifications/{id} in progress under <paramref name="method"/>.</summary>
    private static double InProgress(string text, string method) =>
        text.Split('\n').Where(l => l.StartsWith("http_requests_in_progress{", StringComparison.Ordinal)
                && l.Contains($"method=\"{method}\"", StringComparison.Ordinal) && l.Contains("classifications/{id", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Requests to /health/live counted under <paramref name="method"/>, any status.</summary>
    private static double Requests(string text, string method) =>
        text.Split('\n').Where(l => l.StartsWith("http_requests_received_total{", StringComparison.Ordinal)
                && l.Contains($"method=\"{method}\"", StringComparison.Ordinal) && l.Contains("endpoint=\"/health/live\"", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));

    private static double Counter(string text, string series) =>
        text.Split('\n').Where(l => l.StartsWith(series + " ", StringComparison.Ordinal))
            .Select(l => double.Parse(l[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();
}
