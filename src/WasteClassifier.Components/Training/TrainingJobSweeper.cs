using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Components.Training;

/// <summary>
/// The job table, not the queue, is the record of what must run: a <see cref="TrainModel"/> message can be lost (the
/// in-memory bus of the embedded default dies with its process; the broker was down when the API sent it; a trainer
/// acknowledged it while another job ran, and that job's trainer was killed; its trainer was killed). Every
/// <c>Training:SweepSeconds</c>, on each trainer, this ends the cancel requests no trainer will honour, fails the jobs
/// whose trainer stopped <c>Training:MaxAttempts</c> times and, while no job runs anywhere, sends the next due job again:
/// the oldest queued one, or one whose trainer stopped beating (taken over, one more attempt). A trainer
/// whose job ends does the same at once (<see cref="SendNextAsync"/>). A duplicate costs nothing: the claim takes a job
/// once, and a message for a job already taken is dropped.
/// </summary>
public sealed class TrainingJobSweeper(IServiceScopeFactory scopes, TrainingSettings settings, MessagingOptions messaging, TimeProvider clock,
    ILogger<TrainingJobSweeper> logger) : BackgroundService
{
    /// <summary>
    /// A job queued less than this long ago may still have its first message on the way: the API's send waits 5 s at most,
    /// after a save that usually takes milliseconds. A save whose commit's outcome was unknown sends it only after the
    /// save's retries and a read of the job, which may take longer: the sweeper may then send the job first, and the
    /// trainer claims it once and drops the other message.
    /// </summary>
    public static readonly TimeSpan FirstMessageGrace = TimeSpan.FromMinutes(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(settings.SweepSeconds), clock, stoppingToken);
                await SweepAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning("Sweeping training jobs failed: {Reason}", e.Message);
            }
        }
    }

    /// <summary>One pass; returns the job it sent again, if any.</summary>
    public Task<Guid?> SweepAsync(CancellationToken cancellationToken) => SweepAsync(afterJobEnded: false, cancellationToken);

    /// <summary>
    /// The same pass, for a trainer whose job has just ended: a queued job is due however recently it was queued (by this
    /// clock or an API's), since a trainer that found the ended job running acknowledged its message. Returns the job it
    /// sent, if any.
    /// </summary>
    public Task<Guid?> SendNextAsync(CancellationToken cancellationToken) => SweepAsync(afterJobEnded: true, cancellationToken);

    private async Task<Guid?> SweepAsync(bool afterJobEnded, CancellationToken cancellationToken)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var now = clock.GetUtcNow().UtcDateTime;
        var staleBefore = now.AddSeconds(-settings.StaleAfterSeconds);

        var cancelled = await TrainingJobRunner.CancelAbandonedAsync(db, jobId: null, staleBefore, now);
        if (cancelled > 0) logger.LogInformation("Ended {Count} training job(s) cancelled while no trainer ran them", cancelled);
        var exhausted = await TrainingJobRunner.FailExhaustedAsync(db, jobId: null, staleBefore, settings.MaxAttempts, now);
        if (exhausted > 0)
            logger.LogWarning("Ended {Count} training job(s) whose trainer stopped {MaxAttempts} times without finishing (Training:MaxAttempts; failed, or " +
                "succeeded from a registered candidate); not sent again",
                exhausted, settings.MaxAttempts);

        // One job runs at a time: while one does, the others wait queued, and its trainer sends the next when it ends.
        if (await db.TrainingJobs.AnyAsync(j => j.Status == TrainingJobStatus.Running && j.HeartbeatAt >= staleBefore, cancellationToken)) return null;
        var queuedBefore = now - FirstMessageGrace;
        var due = await db.TrainingJobs.AsNoTracking()
            .Where(j => !j.CancelRequested
                && ((j.Status == TrainingJobStatus.Queued && (afterJobEnded || j.CreatedAt < queuedBefore))
                    || (j.Status == TrainingJobStatus.Running && j.HeartbeatAt < staleBefore)))
            .OrderBy(j => j.CreatedAt).Select(j => new { j.Id, j.Status }).FirstOrDefaultAsync(cancellationToken);
        if (due is null) return null;

        await SendAsync(scope.ServiceProvider, due.Id, cancellationToken);
        logger.LogInformation("Sent training job {TrainingJobId} ({Status}) again: {Reason}", due.Id,
            due.Status == TrainingJobStatus.Queued ? "queued" : "its trainer stopped",
            afterJobEnded ? "the job before it ended" : "no job was running and its message was gone");
        return due.Id;
    }

    /// <summary>Sends <paramref name="jobId"/>'s <see cref="TrainModel"/> message to the train queue.</summary>
    public async Task SendAsync(Guid jobId, CancellationToken cancellationToken)
    {
        using var scope = scopes.CreateScope();
        await SendAsync(scope.ServiceProvider, jobId, cancellationToken);
    }

    private async Task SendAsync(IServiceProvider services, Guid jobId, CancellationToken cancellationToken)
    {
        var endpoint = await services.GetRequiredService<ISendEndpointProvider>().GetSendEndpoint(QueueNames.Address(messaging.TrainQueue));
        await endpoint.Send(new TrainModel { TrainingJobId = jobId, QueuedAt = clock.GetUtcNow() }, cancellationToken);
    }
}
