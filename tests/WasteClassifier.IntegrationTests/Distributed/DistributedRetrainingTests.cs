using System.Net;
using System.Text.Json.Nodes;
using WasteClassifier.IntegrationTests.Fixtures;
using WasteClassifier.IntegrationTests.Training;

namespace WasteClassifier.IntegrationTests.Distributed;

/// <summary>Retraining across processes: a trainer process, two workers and the API on RabbitMQ, PostgreSQL and the S3 server.</summary>
public sealed class DistributedRetrainingTests : IAsyncLifetime
{
    private readonly DistributedFixture _fixture = new();

    public async Task InitializeAsync()
    {
        await _fixture.InitializeAsync();
        await _fixture.StartTrainerAsync();
    }

    public Task DisposeAsync() => _fixture.DisposeAsync();

    [IntegrationFact]
    public async Task Promotion_EveryWorkerSwapsToTheNewVersion_WhileClassificationsKeepCompleting()
    {
        var http = _fixture.Client.Http;
        var before = await TrainingJobClient.ActiveVersionAsync(http);
        var jobId = await TrainingJobClient.SubmitAsync(http, Enumerable.Range(0, 30).Select(i => SyntheticVegetation.Jpeg(i)), "vegetation",
            new Dictionary<string, string> { ["promote"] = "manual" });
        var (job, _) = await TrainingJobClient.WaitAsync(http, jobId, TimeSpan.FromMinutes(5));
        Assert.Equal("succeeded", job["status"]!.GetValue<string>());
        var version = job["candidate_version"]!.GetValue<string>();
        // The small base set's hold-out has fewer images of each class than Training:MinClassSupport (10): the gate does not
        // judge the candidate, says so, and does not refuse it, so it is promoted below without force.
        var decision = job["decision"]!;
        Assert.False(decision["refused"]!.GetValue<bool>(), decision.ToJsonString());
        Assert.StartsWith("no class has 10 hold-out image(s) (Training:MinClassSupport)", decision["reasons"]![0]!.GetValue<string>());

        // Keep submitting through the promotion until both workers have answered with the new version.
        var images = Dataset.Sample(perClass: 1).Select(s => s.Path).ToList();
        var submitted = new List<Guid>();
        submitted.AddRange(await _fixture.Client.SubmitFilesAsync(images));
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync($"/v1/models/{version}/promote", null)).StatusCode);
        var deadline = DateTime.UtcNow.AddMinutes(2);
        IReadOnlyList<JsonNode> results;
        while (true)
        {
            submitted.AddRange(await _fixture.Client.SubmitFilesAsync(images));
            results = await _fixture.Client.WaitForAllAsync(submitted, TimeSpan.FromMinutes(2));
            var swapped = results.Where(r => r["model_version"]!.GetValue<string>() == version).Select(r => r["worker_id"]!.GetValue<string>()).ToHashSet();
            if (swapped.Count == 2 || DateTime.UtcNow > deadline) break;
            await Task.Delay(200);
        }

        Assert.All(results, r => Assert.Equal("completed", r["status"]!.GetValue<string>()));
        Assert.All(results, r => Assert.Contains(r["model_version"]!.GetValue<string>(), new[] { before, version }));
        var workersOnNewVersion = results.Where(r => r["model_version"]!.GetValue<string>() == version).Select(r => r["worker_id"]!.GetValue<string>()).ToHashSet();
        Assert.Equal([_fixture.WorkerA, _fixture.WorkerB], workersOnNewVersion.Order());
    }
}
