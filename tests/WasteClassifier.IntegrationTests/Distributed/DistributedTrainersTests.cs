using System.Net.Http.Json;
using System.Text.Json.Nodes;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.IntegrationTests.Fixtures;
using WasteClassifier.IntegrationTests.Training;

namespace WasteClassifier.IntegrationTests.Distributed;

/// <summary>
/// Two trainer processes (src/WasteClassifier.Trainer's host) and the API on RabbitMQ, PostgreSQL and the S3 server, with
/// a train queue of their own (<c>Messaging:TrainQueue</c>), so parallel runs on one broker never take each other's jobs.
/// </summary>
public sealed class DistributedTrainersTests : IAsyncLifetime
{
    private readonly List<ServiceProcess> _trainers = [];
    private Dictionary<string, string?> _settings = null!;
    private ApiFactory _api = null!;
    private HttpClient _http = null!;

    private static readonly string[] TrainerIds = ["trainer-a", "trainer-b"];

    public async Task InitializeAsync()
    {
        _settings = new Dictionary<string, string?>(await TestServices.DeploymentSettingsAsync("train"))
        {
            ["Training:Datasets:small"] = SmallDatasets.Write(perClass: 20),
            ["Training:BaseDataset"] = "small",
            ["Training:CacheDirectory"] = TrainingFixture.FeatureCache,
            // Neither trainer's sweeper comes round by itself: only the trainer whose job ends can start the waiting one.
            ["Training:SweepSeconds"] = "86400",
        };
        _api = new ApiFactory(_settings);
        _http = _api.CreateClient();
        var bus = await _api.Services.GetRequiredService<IBusControl>().WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(60));
        if (bus != BusHealthStatus.Healthy) throw new InvalidOperationException($"the API's bus is {bus} after 60 s");
        foreach (var id in TrainerIds)
            _trainers.Add(await ServiceProcess.StartTrainerAsync(new Dictionary<string, string?>(_settings) { ["Training:TrainerId"] = id }));
    }

    public async Task DisposeAsync()
    {
        foreach (var trainer in _trainers) await trainer.DisposeAsync();
        if (_api is not null) await _api.DisposeAsync();
        if (_settings is null) return;
        await TestServices.DeleteClassifyQueuesAsync(_settings["Messaging:ClassifyQueue"]!);
        await TestServices.DeleteTrainQueueAsync(_settings["Messaging:TrainQueue"]!);
        await TestServices.DropDatabaseAsync(_settings["Database:ConnectionString"]!);
    }

    [IntegrationFact]
    public async Task JobQueuedWhileAnotherRuns_IsAcknowledged_AndStartsAsSoonAsThatOneEnds()
    {
        var consumed = new TrainModelOutcomes();
        var observers = _trainers.Select(t => t.Services.GetRequiredService<IBus>().ConnectConsumeObserver(consumed)).ToList();
        try
        {
            var first = await TrainingJobClient.SubmitAsync(_http, [], "cardboard", new Dictionary<string, string> { ["epochs"] = "500", ["promote"] = "manual" });
            Assert.Equal("running", await StatusOnceTakenAsync(first));
            // No labelled data at all: once a trainer takes it, it fails at once.
            var waiting = await TrainingJobClient.SubmitAsync(_http, [], "cardboard",
                new Dictionary<string, string> { ["base_dataset"] = "none", ["include_feedback"] = "false" });

            // Whichever trainer got this message answered it (acknowledged) while the first job ran: the busy one runs a job,
            // the idle one finds another job running. The job waits in the table, and its message is gone.
            Assert.Null(await consumed.For(waiting).WaitAsync(TimeSpan.FromSeconds(60)));
            Assert.Equal("queued", await StatusAsync(waiting));
            Assert.Equal("running", await StatusAsync(first));

            var (firstJob, _) = await TrainingJobClient.WaitAsync(_http, first, TimeSpan.FromMinutes(5));
            var (waitingJob, _) = await TrainingJobClient.WaitAsync(_http, waiting, TimeSpan.FromMinutes(1));
            Assert.Equal("succeeded", firstJob["status"]!.GetValue<string>());
            Assert.Equal("failed", waitingJob["status"]!.GetValue<string>());
            Assert.Contains("not enough labelled data", waitingJob["error"]!.GetValue<string>());
            Assert.Equal(1, waitingJob["attempts"]!.GetValue<int>());
            // Each job names the trainer that ran it (either may take the one sent when the first ended).
            Assert.Contains(firstJob["trainer_id"]!.GetValue<string>(), TrainerIds);
            Assert.Contains(waitingJob["trainer_id"]!.GetValue<string>(), TrainerIds);
            // Sent by the trainer whose job ended, not a day later by a sweeper.
            var gap = waitingJob["started_at"]!.GetValue<DateTimeOffset>() - firstJob["finished_at"]!.GetValue<DateTimeOffset>();
            Assert.InRange(gap, TimeSpan.Zero, TimeSpan.FromSeconds(20));
            // Every message, the API's and the trainer's, travelled on this deployment's own queue.
            Assert.NotEmpty(consumed.Inputs);
            Assert.All(consumed.Inputs, input => Assert.EndsWith("/" + _settings["Messaging:TrainQueue"], input.AbsolutePath));
        }
        finally
        {
            foreach (var observer in observers) observer.Disconnect();
        }
    }

    private async Task<string> StatusAsync(Guid jobId) =>
        (await _http.GetFromJsonAsync<JsonNode>($"/v1/training-jobs/{jobId}"))!["status"]!.GetValue<string>();

    private async Task<string> StatusOnceTakenAsync(Guid jobId)
    {
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (true)
        {
            var status = await StatusAsync(jobId);
            if (status != "queued" || DateTime.UtcNow > deadline) return status;
            await Task.Delay(100);
        }
    }
}
