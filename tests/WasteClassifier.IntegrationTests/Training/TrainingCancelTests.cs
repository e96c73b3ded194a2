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
        var jobId = Guid.NewGuid();
        using (var scope = fixture.Factory.Services.CreateScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            db.TrainingJobs.Add(new TrainingJob
            {
                Id = jobId,
                Status = TrainingJobStatus.Running,
                Stage = TrainingStages.Registering,
                OptionsJson = "{}",
                CreatedAt = DateTime.UtcNow,
                StartedAt = DateTime.UtcNow,
            });
            await db.SaveChangesAsync();
        }

        var response = await Http.DeleteAsync($"/v1/training-jobs/{jobId}");

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal("job_registering", body["error"]!.GetValue<string>());
        using (var scope = fixture.Factory.Services.CreateScope())
        {
            var row = await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == jobId);
            Assert.False(row.CancelRequested);
            Assert.Equal(TrainingJobStatus.Running, row.Status);
        }
    }
}
