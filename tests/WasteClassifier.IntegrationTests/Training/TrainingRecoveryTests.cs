using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using MassTransit;
using Microsoft.AspNetCore.TestHost;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;
using WasteClassifier.Testing;

namespace WasteClassifier.IntegrationTests.Training;

/// <summary>
/// Jobs whose message is gone (the embedded default's in-memory queue died with its process, the broker was down at
/// submit, a trainer was killed) still run, and cancel requests that no trainer will honour still end their job.
/// </summary>
public sealed class TrainingRecoveryTests(ManualSweepTrainingFixture fixture) : IClassFixture<ManualSweepTrainingFixture>
{
    private HttpClient Http => fixture.Client.Http;

    private TrainingJobSweeper Sweeper => fixture.Factory.Services.GetServices<IHostedService>().OfType<TrainingJobSweeper>().Single();

    [Fact]
    public async Task Sweep_QueuedJobWhoseMessageWasLost_IsSentAndRuns()
    {
        // Given back at a shutdown, or never sent: queued an hour ago, with no message anywhere. Its dataset is not
        // configured, so it ends (failed, and saying what to set) as soon as a trainer takes it.
        var jobId = await RecordJobAsync(TrainingJobStatus.Queued, createdAgo: TimeSpan.FromHours(1), options: """{"base_dataset":"not-configured"}""");

        Assert.Equal(jobId, await Sweeper.SweepAsync(CancellationToken.None));

        var (job, _) = await TrainingJobClient.WaitAsync(Http, jobId, TimeSpan.FromMinutes(2));
        Assert.Equal("failed", job["status"]!.GetValue<string>());
        Assert.Contains("Training__Datasets__not-configured", job["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Sweep_RunningJobWhoseTrainerStopped_IsTakenOver()
    {
        var jobId = await RecordJobAsync(TrainingJobStatus.Running, createdAgo: TimeSpan.FromHours(2), heartbeatAgo: TimeSpan.FromHours(1),
            options: """{"base_dataset":"not-configured"}""", attempts: 1);

        Assert.Equal(jobId, await Sweeper.SweepAsync(CancellationToken.None));

        var (job, _) = await TrainingJobClient.WaitAsync(Http, jobId, TimeSpan.FromMinutes(2));
        Assert.Equal("failed", job["status"]!.GetValue<string>());
        Assert.Equal(2, job["attempts"]!.GetValue<int>());
        var row = await ReadJobAsync(jobId);
        Assert.NotEqual("dead-trainer", row.TrainerId);
    }

    [Fact]
    public async Task Sweep_RunningJobWhoseTrainerStoppedMaxAttemptsTimes_IsFailedNamingTheAttemptsAndNotSent()
    {
        // Claimed three times (Training:MaxAttempts), and each time its trainer stopped beating: a job that kills its trainer.
        var jobId = await RecordJobAsync(TrainingJobStatus.Running, createdAgo: TimeSpan.FromHours(2), heartbeatAgo: TimeSpan.FromHours(1), attempts: 3);

        Assert.Null(await Sweeper.SweepAsync(CancellationToken.None));

        var job = (await Http.GetFromJsonAsync<JsonNode>($"/v1/training-jobs/{jobId}"))!;
        Assert.Equal("failed", job["status"]!.GetValue<string>());
        Assert.Equal(3, job["attempts"]!.GetValue<int>());
        Assert.Equal("its trainer stopped 3 times without finishing (Training:MaxAttempts is 3); last trainer dead-trainer; not tried again",
            job["error"]!.GetValue<string>());
        Assert.NotNull(job["finished_at"]);
    }

    [Fact]
    public async Task TrainModel_RedeliveredForAJobWhoseTrainerStoppedMaxAttemptsTimes_FailsItInsteadOfRunningIt()
    {
        // The broker redelivers the message of a job whose trainer died, for the third time: it is not run a fourth.
        var jobId = await RecordJobAsync(TrainingJobStatus.Running, createdAgo: TimeSpan.FromHours(2), heartbeatAgo: TimeSpan.FromHours(1), attempts: 3);
        using (var scope = fixture.Factory.Services.CreateScope())
        {
            var queue = scope.ServiceProvider.GetRequiredService<MessagingOptions>().TrainQueue;
            var endpoint = await scope.ServiceProvider.GetRequiredService<ISendEndpointProvider>().GetSendEndpoint(QueueNames.Address(queue));
            await endpoint.Send(new TrainModel { TrainingJobId = jobId, QueuedAt = DateTimeOffset.UtcNow });
        }

        var (job, _) = await TrainingJobClient.WaitAsync(Http, jobId, TimeSpan.FromSeconds(30));
        Assert.Equal("failed", job["status"]!.GetValue<string>());
        Assert.Equal(3, job["attempts"]!.GetValue<int>());
        Assert.StartsWith("its trainer stopped 3 times without finishing", job["error"]!.GetValue<string>());
        Assert.Equal("dead-trainer", (await ReadJobAsync(jobId)).TrainerId);
        // The API shows the operator which trainer had it and when it last beat.
        Assert.Equal("dead-trainer", job["trainer_id"]!.GetValue<string>());
        Assert.InRange(DateTimeOffset.UtcNow - job["heartbeat_at"]!.GetValue<DateTimeOffset>(), TimeSpan.FromMinutes(59), TimeSpan.FromMinutes(65));
    }

    [Fact]
    public async Task Sweep_WhileAJobRuns_SendsNothing()
    {
        var running = await RecordJobAsync(TrainingJobStatus.Running, createdAgo: TimeSpan.FromMinutes(5), heartbeatAgo: TimeSpan.FromSeconds(1));
        var waiting = await RecordJobAsync(TrainingJobStatus.Queued, createdAgo: TimeSpan.FromHours(3), options: """{"base_dataset":"not-configured"}""");
        try
        {
            Assert.Null(await Sweeper.SweepAsync(CancellationToken.None));
            Assert.Equal(TrainingJobStatus.Queued, (await ReadJobAsync(waiting)).Status);
        }
        finally
        {
            await EndAsync(running);
            await EndAsync(waiting);
        }
    }

    [Fact]
    public async Task TrainModel_WhileAnotherTrainerRunsAJob_IsAcknowledgedAndTheJobStartsAsSoonAsThatOneEnds()
    {
        // Two trainers on one database, each with an id of its own, as two trainer processes reading one queue each get a
        // message; neither sweeper comes round by itself here, so only the trainer whose job ends can start the waiting one.
        const string secondTrainer = "trainer-b";
        await using var second = fixture.AnotherProcess(new Dictionary<string, string?> { ["Training:TrainerId"] = secondTrainer });
        var secondHttp = second.CreateClient();
        await second.Services.GetRequiredService<IBusControl>().WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(30));
        var consumed = new TrainModelOutcomes();
        using var observing = second.Services.GetRequiredService<IBus>().ConnectConsumeObserver(consumed);

        var first = await TrainingJobClient.SubmitAsync(Http, [], "cardboard", new Dictionary<string, string> { ["epochs"] = "500", ["promote"] = "manual" });
        Assert.True(await WaitWhileQueuedAsync(first) == "running", (await ReadJobAsync(first)).Error);
        Assert.Equal(ManualSweepTrainingFixture.TrainerId, (await ReadJobAsync(first)).TrainerId);
        // No labelled data at all: once a trainer takes it, it fails at once.
        var waiting = await TrainingJobClient.SubmitAsync(secondHttp, [], "cardboard",
            new Dictionary<string, string> { ["base_dataset"] = "none", ["include_feedback"] = "false" });

        // The second trainer answered its message (acknowledged, not held in a retry) while the first job ran, and the job
        // still waits in the table.
        var fault = await consumed.For(waiting).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Null(fault);
        Assert.Equal(TrainingJobStatus.Queued, (await ReadJobAsync(waiting)).Status);
        Assert.Equal(TrainingJobStatus.Running, (await ReadJobAsync(first)).Status);

        // A copy of the running job's message reaches the second trainer too (a sweeper's resend, a redelivery): the job
        // stays the first trainer's, whose heartbeat, registration and end are written only while the row names it.
        await (await second.Services.GetRequiredService<IBus>().GetSendEndpoint(QueueNames.Address(second.Services.GetRequiredService<MessagingOptions>().TrainQueue)))
            .Send(new TrainModel { TrainingJobId = first, QueuedAt = DateTimeOffset.UtcNow });
        Assert.Null(await consumed.For(first).WaitAsync(TimeSpan.FromSeconds(30)));
        var running = await ReadJobAsync(first);
        Assert.Equal((TrainingJobStatus.Running, ManualSweepTrainingFixture.TrainerId, 1), (running.Status, running.TrainerId, running.Attempts));

        var (firstJob, _) = await TrainingJobClient.WaitAsync(Http, first, TimeSpan.FromMinutes(5));
        var (waitingJob, _) = await TrainingJobClient.WaitAsync(Http, waiting, TimeSpan.FromMinutes(1));
        Assert.Equal("succeeded", firstJob["status"]!.GetValue<string>());
        Assert.Equal("failed", waitingJob["status"]!.GetValue<string>());
        Assert.Contains("not enough labelled data", waitingJob["error"]!.GetValue<string>());
        var gap = waitingJob["started_at"]!.GetValue<DateTimeOffset>() - firstJob["finished_at"]!.GetValue<DateTimeOffset>();
        Assert.InRange(gap, TimeSpan.Zero, TimeSpan.FromSeconds(20));
        // Each in-memory bus reaches its own process's trainer only: the first trainer sent the waiting job to itself.
        Assert.Equal(ManualSweepTrainingFixture.TrainerId, (await ReadJobAsync(first)).TrainerId);
        Assert.Equal(ManualSweepTrainingFixture.TrainerId, (await ReadJobAsync(waiting)).TrainerId);
    }

    [Fact]
    public async Task Sweep_CancelRequestedWhileTheTrainerWasGone_EndsTheJobCancelled()
    {
        var jobId = await RecordJobAsync(TrainingJobStatus.Running, createdAgo: TimeSpan.FromHours(2), heartbeatAgo: TimeSpan.FromHours(1), cancelRequested: true);

        await Sweeper.SweepAsync(CancellationToken.None);

        var row = await ReadJobAsync(jobId);
        Assert.Equal(TrainingJobStatus.Cancelled, row.Status);
        Assert.NotNull(row.FinishedAt);
        Assert.Contains("trainer stopped", row.Error);
    }

    [Fact]
    public async Task Cancel_RunningJobWhoseTrainerStopped_EndsAtOnce()
    {
        var jobId = await RecordJobAsync(TrainingJobStatus.Running, createdAgo: TimeSpan.FromHours(2), heartbeatAgo: TimeSpan.FromHours(1));

        var response = await Http.DeleteAsync($"/v1/training-jobs/{jobId}");

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal("cancelled", body["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task Promote_ForACandidateJudgedAgainstAnotherModel_ChangesNothing()
    {
        var active = await TrainingJobClient.ActiveVersionAsync(Http);
        using var scope = fixture.Factory.Services.CreateScope();
        var registry = scope.ServiceProvider.GetRequiredService<ModelRegistry>();

        // The gate compared the candidate with "earlier-model"; an operator has made another active since.
        var candidate = $"judged-{Guid.NewGuid():N}";
        await RegisterCopyOfTheBundledModelAsync(candidate, await RecordJobAsync(TrainingJobStatus.Succeeded, createdAgo: TimeSpan.FromHours(3)));
        Assert.False(await registry.PromoteReplacingAsync(candidate, expectedActive: "earlier-model", CancellationToken.None));
        Assert.Equal(active, await TrainingJobClient.ActiveVersionAsync(Http));
        // The active model itself counts as promoted (another trainer of the same job promoted it), changing nothing.
        Assert.True(await registry.PromoteReplacingAsync(active, expectedActive: "earlier-model", CancellationToken.None));
        Assert.True(await registry.PromoteReplacingAsync(active, expectedActive: active, CancellationToken.None));
        var models = (await Http.GetFromJsonAsync<JsonNode>("/v1/models"))!["items"]!.AsArray();
        Assert.Single(models, m => m!["status"]!.GetValue<string>() == "active");
    }

    [Fact]
    public async Task Sweep_RunningJobWhoseTrainerStoppedAfterRegisteringItsCandidate_IsFinishedFromItWithoutTrainingAgain()
    {
        var before = await TrainingJobClient.ActiveVersionAsync(Http);
        // Its trainer recorded the gate's decision (promote), registered the candidate, and died before promoting it. Trained
        // again, the job would register a second candidate (and judge it against the first).
        var jobId = await RecordJobAsync(TrainingJobStatus.Running, createdAgo: TimeSpan.FromHours(2), heartbeatAgo: TimeSpan.FromHours(1), attempts: 1,
            options: """{"base_dataset":"small","include_feedback":false,"epochs":20}""",
            stage: TrainingStages.Registering, baselineVersion: before, decisionJson: """{"promoted":true,"reasons":["passed the promotion gate"]}""");
        var version = $"resumed-{jobId:N}";
        await RegisterCopyOfTheBundledModelAsync(version, jobId);
        try
        {
            Assert.Equal(jobId, await Sweeper.SweepAsync(CancellationToken.None));

            var (job, _) = await TrainingJobClient.WaitAsync(Http, jobId, TimeSpan.FromMinutes(3));
            Assert.Equal("succeeded", job["status"]!.GetValue<string>());
            Assert.Equal(version, job["candidate_version"]?.GetValue<string>());
            Assert.True(job["decision"]!["promoted"]!.GetValue<bool>(), job.ToJsonString());
            Assert.Equal(2, job["attempts"]!.GetValue<int>());
            Assert.Equal(version, await TrainingJobClient.ActiveVersionAsync(Http));
            // Not trained again: the job has the one candidate, not a second judged against the first.
            var models = (await Http.GetFromJsonAsync<JsonNode>("/v1/models"))!["items"]!.AsArray();
            Assert.Single(models, m => m!["training_job_id"]?.GetValue<string>() == jobId.ToString());
        }
        finally
        {
            await Http.PostAsync($"/v1/models/{before}/rollback", null);
        }
    }

    [Fact]
    public async Task Job_PromotionAnnouncementRefusedByTheBroker_SucceedsPromotedAndWorkersLoadTheVersionFromTheRegistry()
    {
        var before = await TrainingJobClient.ActiveVersionAsync(Http);
        // A trainer whose every publish fails, and a gate that passes any candidate (promote=auto always promotes).
        await using var process = fixture.AnotherProcess(new Dictionary<string, string?>
        {
            ["Training:TrainerId"] = "trainer-refused",
            ["Training:MaxMacroF1Drop"] = "1",
            ["Training:MaxClassRecallDrop"] = "1",
            // The small base set's hold-out has about 4 images per class: judge them rather than leave the candidate unjudged.
            ["Training:MinClassSupport"] = "1",
        });
        // Disposed with the factory it derives from (which shares its host).
        var refusing = process.WithWebHostBuilder(builder =>
            builder.ConfigureTestServices(services => services.AddScoped(_ => UnreachablePublishEndpoint.Failing())));
        var http = refusing.CreateClient();
        await refusing.Services.GetRequiredService<IBusControl>().WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(30));
        try
        {
            var jobId = await TrainingJobClient.SubmitAsync(http, [], "cardboard",
                new Dictionary<string, string> { ["epochs"] = "20", ["include_feedback"] = "false", ["promote"] = "auto" });

            var (job, _) = await TrainingJobClient.WaitAsync(Http, jobId, TimeSpan.FromMinutes(2));

            Assert.Equal("succeeded", job["status"]!.GetValue<string>());
            var version = job["candidate_version"]!.GetValue<string>();
            Assert.True(job["decision"]!["promoted"]!.GetValue<bool>(), job.ToJsonString());
            Assert.NotNull(job["metrics"]!["candidate"]);
            Assert.Equal(version, await TrainingJobClient.ActiveVersionAsync(Http));
            // This process's worker never hears of it (the event was never sent, and its bus is another): it loads the
            // version at its next registry check.
            Assert.Equal(version, await ServedVersionAsync(version));
        }
        finally
        {
            await Http.PostAsync($"/v1/models/{before}/rollback", null);
        }
    }

    /// <summary>The version the fixture's worker classifies with, once it is <paramref name="expected"/> or after 30 s.</summary>
    private async Task<string> ServedVersionAsync(string expected)
    {
        var image = Dataset.Sample(perClass: 1)[0].Path;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var ids = await fixture.Client.SubmitFilesAsync([image]);
            var served = (await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(1)))[0]["model_version"]!.GetValue<string>();
            if (served == expected || DateTime.UtcNow > deadline) return served;
            await Task.Delay(500);
        }
    }

    private async Task RegisterCopyOfTheBundledModelAsync(string version, Guid trainingJobId)
    {
        using var scope = fixture.Factory.Services.CreateScope();
        var directory = scope.ServiceProvider.GetRequiredService<ModelOptions>().Directory;
        var card = ModelCard.Load(directory) with { Version = version };
        await scope.ServiceProvider.GetRequiredService<ModelRegistry>().RegisterAsync(card,
            new Dictionary<string, byte[]> { [card.Head!] = await File.ReadAllBytesAsync(Path.Combine(directory, card.Head!)) }, "trained", trainingJobId,
            card.Metrics?.GetRawText(), ModelStatus.Candidate, CancellationToken.None);
    }

    private async Task<string> WaitWhileQueuedAsync(Guid jobId)
    {
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (true)
        {
            var status = (await ReadJobAsync(jobId)).Status;
            if (status != TrainingJobStatus.Queued || DateTime.UtcNow > deadline) return status;
            await Task.Delay(100);
        }
    }

    private async Task<Guid> RecordJobAsync(string status, TimeSpan createdAgo, TimeSpan? heartbeatAgo = null, string options = "{}", bool cancelRequested = false,
        int attempts = 0, string? stage = null, string? baselineVersion = null, string? decisionJson = null)
    {
        using var scope = fixture.Factory.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var now = DateTime.UtcNow;
        var job = new TrainingJob
        {
            Id = Guid.NewGuid(),
            Status = status,
            Stage = stage ?? (status == TrainingJobStatus.Running ? TrainingStages.Fitting : null),
            OptionsJson = options,
            CreatedAt = now - createdAgo,
            StartedAt = status == TrainingJobStatus.Running ? now - createdAgo : null,
            HeartbeatAt = now - heartbeatAgo,
            TrainerId = status == TrainingJobStatus.Running ? "dead-trainer" : null,
            CancelRequested = cancelRequested,
            Attempts = attempts,
            BaselineVersion = baselineVersion,
            DecisionJson = decisionJson,
        };
        db.TrainingJobs.Add(job);
        await db.SaveChangesAsync();
        return job.Id;
    }

    private async Task EndAsync(Guid jobId)
    {
        using var scope = fixture.Factory.Services.CreateScope();
        await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().TrainingJobs.Where(j => j.Id == jobId)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, TrainingJobStatus.Failed).SetProperty(j => j.FinishedAt, DateTime.UtcNow));
    }

    private async Task<TrainingJob> ReadJobAsync(Guid id)
    {
        using var scope = fixture.Factory.Services.CreateScope();
        return await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == id);
    }
}
