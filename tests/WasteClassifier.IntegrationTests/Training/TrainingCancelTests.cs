using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Components.Training;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Training;

/// <summary>
/// A cancel request is honoured up to the moment a job registers its candidate, and refused after it, even when the
/// trainer's heartbeat (which turns requests into cancellation while the job runs) never comes round.
/// </summary>
public sealed class TrainingCancelTests(SlowHeartbeatTrainingFixture fixture) : IClassFixture<SlowHeartbeatTrainingFixture>
{
    private HttpClient Http => fixture.Client.Http;

    [Fact]
    public async Task Cancel_RequestTheHeartbeatNeverReads_JobEndsCancelledWithoutACandidate()
    {
        var before = await TrainingJobClient.ActiveVersionAsync(Http);

        var (cancel, job) = await TrainingJobClient.CancelOnceRunningAsync(Http, epochs: 200);

        Assert.Equal(HttpStatusCode.Accepted, cancel);
        Assert.Equal("cancelled", job["status"]!.GetValue<string>());
        Assert.Null(job["candidate_version"]);
        Assert.Equal(before, await TrainingJobClient.ActiveVersionAsync(Http));
    }

    [Fact]
    public async Task Cancel_JobRegisteringItsCandidate_409AndTheJobIsLeftAsItWas()
    {
        // A job past its last check: running, registering (no heartbeat, so it holds no other job back).
        var jobId = await RecordJobAsync(TrainingJobStatus.Running, TrainingStages.Registering);

        var response = await Http.DeleteAsync($"/v1/training-jobs/{jobId}");

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal("job_registering", body["error"]!.GetValue<string>());
        var row = await ReadJobAsync(jobId);
        Assert.False(row.CancelRequested);
        Assert.Equal(TrainingJobStatus.Running, row.Status);
    }

    [Fact]
    public async Task Heartbeat_ProgressReadBeforeTheJobRegistered_LeavesItRegistering()
    {
        // The heartbeat read "evaluating", then the job marked itself registering, then the heartbeat's UPDATE ran.
        var jobId = await RecordJobAsync(TrainingJobStatus.Running, TrainingStages.Registering);
        var beat = DateTime.UtcNow;
        using (var scope = fixture.Factory.Services.CreateScope())
        {
            var context = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            // A trainer whose job was taken over (its heartbeat went stale) stores nothing, and learns so from the 0.
            Assert.Equal(0, await TrainingJobRunner.StoreHeartbeatAsync(context, jobId, "another-trainer", TrainingStages.Evaluating, 90, beat.AddSeconds(-1)));
            Assert.Equal(1, await TrainingJobRunner.StoreHeartbeatAsync(context, jobId, RecordedTrainer, TrainingStages.Evaluating, 90, beat));
        }

        var row = await ReadJobAsync(jobId);
        Assert.Equal(TrainingStages.Registering, row.Stage);
        Assert.Equal(beat, row.HeartbeatAt!.Value, TimeSpan.FromMilliseconds(1));
        // So the API still refuses a cancel request the job would never honour.
        Assert.Equal(HttpStatusCode.Conflict, (await Http.DeleteAsync($"/v1/training-jobs/{jobId}")).StatusCode);
    }

    [Fact]
    public async Task Cancel_QueuedJob_CancelledAtOnceAndNeverRun()
    {
        // Queued, its message not sent: as a job waiting behind another looks.
        var jobId = await RecordJobAsync(TrainingJobStatus.Queued, stage: null);

        var response = await Http.DeleteAsync($"/v1/training-jobs/{jobId}");

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal("cancelled", body["status"]!.GetValue<string>());
        // Said as a job cancelled while running says it (its error was null).
        Assert.Equal(TrainingJobRunner.CancelledBeforeItStarted, body["error"]!.GetValue<string>());
        var row = await ReadJobAsync(jobId);
        Assert.True(row.CancelRequested);
        Assert.NotNull(row.FinishedAt);
        Assert.Equal(HttpStatusCode.NotFound, (await Http.DeleteAsync($"/v1/training-jobs/{Guid.NewGuid()}")).StatusCode);
    }

    private const string RecordedTrainer = "recorded-trainer";

    private async Task<Guid> RecordJobAsync(string status, string? stage)
    {
        using var scope = fixture.Factory.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var job = new TrainingJob
        {
            Id = Guid.NewGuid(),
            Status = status,
            Stage = stage,
            OptionsJson = "{}",
            CreatedAt = DateTime.UtcNow,
            TrainerId = status == TrainingJobStatus.Running ? RecordedTrainer : null,
        };
        db.TrainingJobs.Add(job);
        await db.SaveChangesAsync();
        return job.Id;
    }

    private async Task<TrainingJob> ReadJobAsync(Guid id)
    {
        using var scope = fixture.Factory.Services.CreateScope();
        return await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == id);
    }
}
