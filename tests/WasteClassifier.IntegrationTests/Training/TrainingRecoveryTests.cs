using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

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
            options: """{"base_dataset":"not-configured"}""");

        Assert.Equal(jobId, await Sweeper.SweepAsync(CancellationToken.None));

        var (job, _) = await TrainingJobClient.WaitAsync(Http, jobId, TimeSpan.FromMinutes(2));
        Assert.Equal("failed", job["status"]!.GetValue<string>());
        var row = await ReadJobAsync(jobId);
        Assert.NotEqual("dead-trainer", row.TrainerId);
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
        Assert.False(await registry.PromoteReplacingAsync(active, expectedActive: "earlier-model", CancellationToken.None));
        Assert.Equal(active, await TrainingJobClient.ActiveVersionAsync(Http));
        Assert.True(await registry.PromoteReplacingAsync(active, expectedActive: active, CancellationToken.None));
        var models = (await Http.GetFromJsonAsync<JsonNode>("/v1/models"))!["items"]!.AsArray();
        Assert.Single(models, m => m!["status"]!.GetValue<string>() == "active");
    }

    private async Task<Guid> RecordJobAsync(string status, TimeSpan createdAgo, TimeSpan? heartbeatAgo = null, string options = "{}", bool cancelRequested = false)
    {
        using var scope = fixture.Factory.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var now = DateTime.UtcNow;
        var job = new TrainingJob
        {
            Id = Guid.NewGuid(),
            Status = status,
            Stage = status == TrainingJobStatus.Running ? TrainingStages.Fitting : null,
            OptionsJson = options,
            CreatedAt = now - createdAgo,
            StartedAt = status == TrainingJobStatus.Running ? now - createdAgo : null,
            HeartbeatAt = now - heartbeatAgo,
            TrainerId = status == TrainingJobStatus.Running ? "dead-trainer" : null,
            CancelRequested = cancelRequested,
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
