using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;
using WasteClassifier.IntegrationTests.Reliability;

namespace WasteClassifier.IntegrationTests.Training;

/// <summary>
/// A trainer acknowledges a job's message when it claims the job, not when the run ends (RabbitMQ closes the channel of a
/// delivery unacknowledged past consumer_timeout, 30 min by default): the job row is the record, so a trainer killed after
/// the claim loses nothing. On RabbitMQ, PostgreSQL and the S3 server, with the trainer as a real child process.
/// </summary>
public sealed class TrainerCrashTests : IAsyncLifetime
{
    private Dictionary<string, string?> _settings = null!;
    private ApiFactory _api = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _settings = new Dictionary<string, string?>(await TestServices.DeploymentSettingsAsync("crash"))
        {
            ["Training:Datasets:small"] = SmallDatasets.Write(perClass: 20),
            ["Training:BaseDataset"] = "small",
            ["Training:CacheDirectory"] = TrainingFixture.FeatureCache,
            // A stopped trainer's job is seen as such within seconds.
            ["Training:HeartbeatSeconds"] = "1",
            ["Training:StaleAfterSeconds"] = "8",
            ["Training:SweepSeconds"] = "2",
        };
        _api = new ApiFactory(_settings);
        _http = _api.CreateClient();
        var bus = await _api.Services.GetRequiredService<IBusControl>().WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(60));
        if (bus != BusHealthStatus.Healthy) throw new InvalidOperationException($"the API's bus is {bus} after 60 s");
    }

    public async Task DisposeAsync()
    {
        if (_api is not null) await _api.DisposeAsync();
        if (_settings is null) return;
        await TestServices.DeleteTrainQueueAsync(_settings["Messaging:TrainQueue"]!);
        await TestServices.DropDatabaseAsync(_settings["Database:ConnectionString"]!);
    }

    [IntegrationFact]
    public async Task Trainer_KilledWhileItRunsAJob_LeavesNoMessageToRedeliverAndTheSweeperHasTheJobTakenOver()
    {
        var queue = _settings["Messaging:TrainQueue"]!;
        await using (var first = WorkerProcess.StartTrainer(new Dictionary<string, string?>(_settings) { ["Training:TrainerId"] = "trainer-killed" }))
        {
            var jobId = await TrainingJobClient.SubmitAsync(_http, [], "cardboard",
                new Dictionary<string, string> { ["epochs"] = "100", ["include_feedback"] = "false", ["promote"] = "manual" });
            Assert.Equal("running", await StatusOnceTakenAsync(jobId));
            // Past the claim's acknowledgement. The broker's clients are not told a queue's unacknowledged count, but the trainer
            // takes one message at a time (prefetch 1): a second one for the same job leaves the queue only once the job's own
            // message was acknowledged. A fixed wait for it ran out on a loaded machine.
            var probe = NewId.NextGuid();
            var endpoint = await _api.Services.GetRequiredService<IBus>().GetSendEndpoint(QueueNames.Address(queue));
            await endpoint.Send(new TrainModel { TrainingJobId = jobId, QueuedAt = DateTimeOffset.UtcNow }, context => context.MessageId = probe);
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await TestServices.QueueCountsAsync(queue)).Ready > 0 && DateTime.UtcNow < deadline) await Task.Delay(50);
            Assert.Equal((0u, 1u), await TestServices.QueueCountsAsync(queue));

            first.KillHard();

            // Once the broker has dropped the dead trainer's consumer, a message it had not acknowledged would be ready again.
            deadline = DateTime.UtcNow.AddSeconds(30);
            var counts = await TestServices.QueueCountsAsync(queue);
            while (counts.Consumers > 0 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200);
                counts = await TestServices.QueueCountsAsync(queue);
            }
            Assert.Equal(0u, counts.Consumers);
            // The second message may have been killed with the trainer before its own acknowledgement: it is back, and taken off
            // here. Any other message is the job's, delivered again.
            await using (var connection = await TestServices.ConnectToBrokerAsync())
            await using (var channel = await connection.CreateChannelAsync())
                while (await channel.BasicGetAsync(queue, autoAck: true) is { } message)
                    Assert.Contains(probe.ToString(), Encoding.UTF8.GetString(message.Body.Span));
            Assert.Equal((0u, 0u), await TestServices.QueueCountsAsync(queue));

            // Nothing is in the queue for the next trainer: its sweeper sends the job once the killed trainer's heartbeat is
            // stale, and it takes the job over.
            await using var second = await ServiceProcess.StartTrainerAsync(new Dictionary<string, string?>(_settings) { ["Training:TrainerId"] = "trainer-next" });
            var (job, _) = await TrainingJobClient.WaitAsync(_http, jobId, TimeSpan.FromMinutes(4));

            Assert.Equal("succeeded", job["status"]!.GetValue<string>());
            Assert.Equal("trainer-next", job["trainer_id"]!.GetValue<string>());
            Assert.Equal(2, job["attempts"]!.GetValue<int>());
        }
    }

    [IntegrationFact]
    public async Task Trainer_StoppedWhileItRunsAJob_GivesTheJobBackQueuedWithItsAttempt()
    {
        var trainer = await ServiceProcess.StartTrainerAsync(new Dictionary<string, string?>(_settings) { ["Training:TrainerId"] = "trainer-stopped" });
        Guid jobId;
        try
        {
            jobId = await TrainingJobClient.SubmitAsync(_http, [], "cardboard",
                new Dictionary<string, string> { ["epochs"] = "500", ["include_feedback"] = "false", ["promote"] = "manual" });
            Assert.Equal("running", await StatusOnceTakenAsync(jobId));
        }
        finally
        {
            // A rolling restart's SIGTERM: the host stops, and the job running past its message's acknowledgement with it.
            await trainer.DisposeAsync();
        }

        var job = (await _http.GetFromJsonAsync<JsonNode>($"/v1/training-jobs/{jobId}"))!;
        Assert.Equal("queued", job["status"]!.GetValue<string>());
        Assert.Equal(0, job["attempts"]!.GetValue<int>());
        // Its message was sent again as the trainer stopped: it waits in the queue for the next trainer, not for a sweeper.
        Assert.Equal((1u, 0u), await TestServices.QueueCountsAsync(_settings["Messaging:TrainQueue"]!));
    }

    [IntegrationFact]
    public async Task Trainer_StoppedWhileItsJobIsPromoting_FinishesTheJobAndSendsTheNextOne()
    {
        const string trainerId = "trainer-stopped-promoting";
        var baseline = await TrainingJobClient.ActiveVersionAsync(_http);
        // A job whose candidate an earlier attempt registered, to be promoted (its trainer died before): the resume ignores a
        // stop. Another job, submitted a moment ago, waits behind it; a sweeper would leave it alone for a minute.
        var resumed = await RecordJobAsync(TrainingJobStatus.Running, TrainingStages.Registering, createdAgo: TimeSpan.FromHours(2), heartbeatAgo: TimeSpan.FromHours(1),
            attempts: 1, baseline, """{"promoted":true,"reasons":["passed the promotion gate"]}""");
        var version = $"resumed-{resumed:N}";
        await RegisterCopyOfTheBundledModelAsync(version, resumed);
        var waiting = await RecordJobAsync(TrainingJobStatus.Queued, stage: null, createdAgo: TimeSpan.Zero, heartbeatAgo: null, attempts: 0, null, null);

        // Promotions wait on this lock: the job is held in its promotion until the trainer has been told to stop.
        using var scope = _api.Services.CreateScope();
        var locker = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        await using var promotions = await locker.Database.BeginTransactionAsync();
        await ClusterLocks.TakeAsync(locker, ClusterLocks.ModelPromotions, CancellationToken.None);
        var trainer = await ServiceProcess.StartTrainerAsync(new Dictionary<string, string?>(_settings)
        {
            ["Training:TrainerId"] = trainerId,
            // Its own sweeper must not find the job stale while it waits on the lock.
            ["Training:StaleAfterSeconds"] = "60",
        });
        // In its promotion: the trainer waits on the lock in PostgreSQL.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (await PromotionLockWaitersAsync() == 0 && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Equal(1, await PromotionLockWaitersAsync());
        var claimed = await ReadJobAsync(resumed);
        Assert.Equal((trainerId, version), (claimed.TrainerId, claimed.CandidateVersion));

        // The bus stops first (its consumer leaves the queue), then the job host is told to stop; the lock is let go only once
        // it has been. A fixed second for that let the job end before the stop on a loaded machine, and the test passed
        // without a stop ever reaching the promotion.
        var toldToStop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task stopped;
        await using (trainer.Services.GetRequiredService<TrainingJobHost>().Stopping.Register(() => toldToStop.TrySetResult()))
        {
            stopped = trainer.DisposeAsync().AsTask();
            await toldToStop.Task.WaitAsync(TimeSpan.FromSeconds(60));
        }
        Assert.Equal(TrainingJobStatus.Running, (await ReadJobAsync(resumed)).Status);
        await promotions.RollbackAsync();
        await stopped;

        var ended = await ReadJobAsync(resumed);
        Assert.Equal((TrainingJobStatus.Succeeded, version), (ended.Status, ended.CandidateVersion));
        Assert.Equal(TrainingJobStatus.Queued, (await ReadJobAsync(waiting)).Status);
        // The job that ended sent the next one as the trainer stopped: it waits in the queue for the next trainer.
        Assert.Equal((1u, 0u), await TestServices.QueueCountsAsync(_settings["Messaging:TrainQueue"]!));
    }

    private async Task RegisterCopyOfTheBundledModelAsync(string version, Guid trainingJobId)
    {
        using var scope = _api.Services.CreateScope();
        var directory = scope.ServiceProvider.GetRequiredService<ModelOptions>().Directory;
        var card = ModelCard.Load(directory) with { Version = version };
        await scope.ServiceProvider.GetRequiredService<ModelRegistry>().RegisterAsync(card,
            new Dictionary<string, byte[]> { [card.Head!] = await File.ReadAllBytesAsync(Path.Combine(directory, card.Head!)) }, "trained", trainingJobId,
            card.Metrics?.GetRawText(), ModelStatus.Candidate, CancellationToken.None);
    }

    private async Task<Guid> RecordJobAsync(string status, string? stage, TimeSpan createdAgo, TimeSpan? heartbeatAgo, int attempts, string? baselineVersion,
        string? decisionJson)
    {
        using var scope = _api.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var now = DateTime.UtcNow;
        var job = new TrainingJob
        {
            Id = Guid.NewGuid(),
            Status = status,
            Stage = stage,
            OptionsJson = "{}",
            CreatedAt = now - createdAgo,
            StartedAt = status == TrainingJobStatus.Running ? now - createdAgo : null,
            HeartbeatAt = now - heartbeatAgo,
            TrainerId = status == TrainingJobStatus.Running ? "dead-trainer" : null,
            Attempts = attempts,
            BaselineVersion = baselineVersion,
            DecisionJson = decisionJson,
        };
        db.TrainingJobs.Add(job);
        await db.SaveChangesAsync();
        return job.Id;
    }

    /// <summary>Sessions of this test's database waiting for the promotions' lock (a bigint advisory key: objsubid 1).</summary>
    private async Task<int> PromotionLockWaitersAsync()
    {
        using var scope = _api.Services.CreateScope();
        return await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Database.SqlQuery<int>(
            $"""
             SELECT count(*)::int AS "Value" FROM pg_locks
             WHERE locktype = 'advisory' AND NOT granted AND classid = 0 AND objid::bigint = {ClusterLocks.ModelPromotions} AND objsubid = 1
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
             """).SingleAsync();
    }

    private async Task<TrainingJob> ReadJobAsync(Guid id)
    {
        using var scope = _api.Services.CreateScope();
        return await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == id);
    }

    private async Task<string> StatusOnceTakenAsync(Guid jobId)
    {
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (true)
        {
            var status = (await _http.GetFromJsonAsync<JsonNode>($"/v1/training-jobs/{jobId}"))!["status"]!.GetValue<string>();
            if (status != "queued" || DateTime.UtcNow > deadline) return status;
            await Task.Delay(100);
        }
    }
}
