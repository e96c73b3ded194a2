using System.Net.Http.Json;
using System.Text.Json.Nodes;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Distributed;

/// <summary>Real images through the HTTP API, RabbitMQ, two competing workers, the S3 server and PostgreSQL.</summary>
public sealed class DistributedPipelineTests : IAsyncLifetime
{
    private readonly DistributedFixture _fixture = new();

    public Task InitializeAsync() => _fixture.InitializeAsync();

    public Task DisposeAsync() => _fixture.DisposeAsync();

    [IntegrationFact]
    public async Task Submit_ImagesOfEveryClass_TwoWorkersClassifyThemAllAndStatsAddUp()
    {
        var sample = Dataset.Sample(perClass: 6);
        var ids = new List<Guid>();
        foreach (var chunk in sample.Chunk(12))
            ids.AddRange(await _fixture.Client.SubmitFilesAsync(chunk.Select(s => s.Path), source: "line-1"));

        // Long polling against PostgreSQL: one GET, held until a worker has written the result.
        var first = (await _fixture.Client.Http.GetFromJsonAsync<JsonNode>($"/v1/classifications/{ids[0]}?wait=30"))!;
        Assert.Equal("completed", first["status"]!.GetValue<string>());
        var results = await _fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(3));

        Assert.All(results, r => Assert.Equal("completed", r["status"]!.GetValue<string>()));
        var correct = results.Zip(sample).Count(p => p.First["predicted_class"]!.GetValue<string>() == p.Second.Label);
        Assert.True(correct >= sample.Count * 0.9, $"{correct} of {sample.Count} correct");
        Assert.All(results, r => Assert.InRange(r["all_predictions"]!.AsObject().Sum(p => p.Value!.GetValue<double>()), 0.999, 1.001));
        var workers = results.Select(r => r["worker_id"]!.GetValue<string>()).ToHashSet();
        Assert.Equal([DistributedFixture.WorkerA, DistributedFixture.WorkerB], workers.Order());

        var stats = (await _fixture.Client.Http.GetFromJsonAsync<JsonNode>("/stats"))!;
        Assert.Equal(sample.Count, stats["counts"]!["completed"]!.GetValue<long>());
        Assert.Equal(0, stats["counts"]!["failed"]!.GetValue<long>());
        var perWorker = stats["per_worker"]!.AsArray();
        Assert.Equal(sample.Count, perWorker.Sum(w => w!["completed"]!.GetValue<long>()));
        Assert.Equal(2, perWorker.Count);
        var total = stats["latency_ms"]!["total"]!;
        Assert.Equal(sample.Count, total["count"]!.GetValue<long>());
        Assert.True(total["p50"]!.GetValue<double>() <= total["p95"]!.GetValue<double>());
        Assert.True(total["p95"]!.GetValue<double>() <= total["max"]!.GetValue<double>());
        Assert.Equal(sample.Count, stats["class_distribution"]!.AsObject().Sum(c => c.Value!.GetValue<long>()));

        var health = (await _fixture.Client.Http.GetFromJsonAsync<JsonNode>("/health"))!;
        Assert.Equal("healthy", health["status"]!.GetValue<string>());
        Assert.Equal("healthy", health["components"]!["broker"]!["status"]!.GetValue<string>());
    }

    [IntegrationFact]
    public async Task Predict_ThroughRabbitMq_AnswersWithTheResult()
    {
        var (path, label) = Dataset.Sample(perClass: 1).First(s => s.Label == "paper");
        using var form = ClassifierClient.Form([(Path.GetFileName(path), File.ReadAllBytes(path))]);
        var response = await _fixture.Client.Http.PostAsync("/predict", form);
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.True(body["success"]!.GetValue<bool>(), body.ToJsonString());
        Assert.Equal(label, body["predicted_class"]!.GetValue<string>());
    }
}
