using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Components.Observability;
using WasteClassifier.Components.Training;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Components;

/// <summary>
/// A job failed for its trainers' stopping (by a sweeper or by a claim), or cancelled while its trainer was gone, is recorded
/// in <c>wasteclassifier_training_job_duration_seconds</c>, as a job that ends in its runner is. The histogram is a
/// process-wide static: nothing else in this test process records failed or cancelled training jobs, and these tests run
/// apart from every other.
/// </summary>
[Collection(nameof(TrainingJobMetricsTests))]
public sealed class TrainingJobMetricsTests : IDisposable
{
    private static readonly DateTime Now = new(2026, 3, 1, 12, 0, 0, DateTimeKind.Utc);
    private readonly InMemoryDatabase _database = new();

    private static (long Count, double Sum) Failed() => Recorded(TrainingJobStatus.Failed);

    private static (long Count, double Sum) Recorded(string status)
    {
        var recorded = ClassifierMetrics.TrainingJobSeconds.WithLabels(status);
        return (recorded.Count, recorded.Sum);
    }

    [Fact]
    public async Task Sweep_JobWhoseTrainerStoppedMaxAttemptsTimes_RecordsItsDurationAsFailed()
    {
        await AddExhaustedAsync(startedAgo: TimeSpan.FromSeconds(600));
        await using var services = new ServiceCollection().AddScoped(_ => _database.NewContext()).BuildServiceProvider();
        var sweeper = new TrainingJobSweeper(services.GetRequiredService<IServiceScopeFactory>(), new TrainingSettings(), new MessagingOptions(), new FixedClock(Now),
            NullLogger<TrainingJobSweeper>.Instance);
        var before = Failed();

        Assert.Null(await sweeper.SweepAsync(CancellationToken.None));

        var after = Failed();
        Assert.Equal(1, after.Count - before.Count);
        Assert.Equal(600, after.Sum - before.Sum, precision: 3);
    }

    [Fact]
    public async Task FailExhausted_ByTheClaimThenBySweepers_RecordsTheJobOnce()
    {
        var jobId = await AddExhaustedAsync(startedAgo: TimeSpan.FromSeconds(300));
        var staleBefore = Now.AddSeconds(-120);
        var before = Failed();

        // The claim fails the job its message named; two trainers' sweepers come round after it.
        Assert.Equal(1, await TrainingJobRunner.FailExhaustedAsync(_database.Context, jobId, staleBefore, maxAttempts: 3, Now));
        Assert.Equal(0, await TrainingJobRunner.FailExhaustedAsync(_database.Context, jobId: null, staleBefore, maxAttempts: 3, Now));
        using (var other = _database.NewContext())
            Assert.Equal(0, await TrainingJobRunner.FailExhaustedAsync(other, jobId: null, staleBefore, maxAttempts: 3, Now));

        var after = Failed();
        Assert.Equal(1, after.Count - before.Count);
        Assert.Equal(300, after.Sum - before.Sum, precision: 3);
        Assert.Equal(TrainingJobStatus.Failed, (await _database.Context.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == jobId)).Status);
    }

    [Fact]
    public async Task CancelAbandoned_RunningJobWhoseTrainerStopped_RecordsItsDurationAsCancelledOnce()
    {
        var jobId = await AddExhaustedAsync(startedAgo: TimeSpan.FromSeconds(450), cancelRequested: true);
        var staleBefore = Now.AddSeconds(-120);
        var before = Recorded(TrainingJobStatus.Cancelled);

        // The API's DELETE ends the job; a sweeper comes round after it.
        Assert.Equal(1, await TrainingJobRunner.CancelAbandonedAsync(_database.Context, jobId, staleBefore, Now));
        using (var other = _database.NewContext())
            Assert.Equal(0, await TrainingJobRunner.CancelAbandonedAsync(other, jobId: null, staleBefore, Now));

        var after = Recorded(TrainingJobStatus.Cancelled);
        Assert.Equal(1, after.Count - before.Count);
        Assert.Equal(450, after.Sum - before.Sum, precision: 3);
        Assert.Equal(TrainingJobStatus.Cancelled, (await _database.Context.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == jobId)).Status);
    }

    [Fact]
    public async Task CancelAbandoned_QueuedJobAStoppingTrainerGaveBack_RecordsNoDuration()
    {
        var jobId = await AddExhaustedAsync(startedAgo: TimeSpan.FromSeconds(450), cancelRequested: true);
        // Given back by a trainer stopping gracefully: queued again, its start kept.
        await _database.Context.TrainingJobs.Where(j => j.Id == jobId).ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, TrainingJobStatus.Queued));
        var before = Recorded(TrainingJobStatus.Cancelled);

        Assert.Equal(1, await TrainingJobRunner.CancelAbandonedAsync(_database.Context, jobId, Now.AddSeconds(-120), Now));

        Assert.Equal(before, Recorded(TrainingJobStatus.Cancelled));
        Assert.Equal(TrainingJobStatus.Cancelled, (await _database.Context.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == jobId)).Status);
    }

    /// <summary>A job claimed three times (Training:MaxAttempts' default) whose last trainer stopped beating 10 s after it took the job.</summary>
    private async Task<Guid> AddExhaustedAsync(TimeSpan startedAgo, bool cancelRequested = false)
    {
        var job = new TrainingJob
        {
            Id = Guid.NewGuid(),
            Status = TrainingJobStatus.Running,
            Stage = TrainingStages.Fitting,
            OptionsJson = "{}",
            CreatedAt = Now - startedAgo - TimeSpan.FromMinutes(5),
            StartedAt = Now - startedAgo,
            HeartbeatAt = Now - startedAgo + TimeSpan.FromSeconds(10),
            TrainerId = "dead-trainer",
            Attempts = 3,
            CancelRequested = cancelRequested,
        };
        _database.Context.TrainingJobs.Add(job);
        await _database.Context.SaveChangesAsync();
        _database.Context.ChangeTracker.Clear();
        return job.Id;
    }

    private sealed class FixedClock(DateTime now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => new(now);
    }

    public void Dispose() => _database.Dispose();
}

[CollectionDefinition(nameof(TrainingJobMetricsTests), DisableParallelization = true)]
public sealed class TrainingJobMetricsCollection;
