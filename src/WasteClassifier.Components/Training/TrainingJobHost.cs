using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using WasteClassifier.Infrastructure.Messaging;

namespace WasteClassifier.Components.Training;

/// <summary>
/// Runs the job this trainer claimed in the background, one at a time, so that its <c>TrainModel</c> message is
/// acknowledged at the claim instead of held for the whole run: RabbitMQ closes the channel of a delivery left
/// unacknowledged past its consumer_timeout (30 min by default), which a long job outlived. The job row, not the message,
/// records the job: a trainer that dies after the claim leaves it running with a heartbeat that goes stale, and a sweeper
/// sends it again for another trainer to take over; a trainer that stops gives it back (queued) and sends its message
/// again. A job that ends here has the next due one sent at once.
/// </summary>
public sealed class TrainingJobHost(IServiceScopeFactory scopes, TrainingJobSweeper sweeper, TrainingSettings settings, MessagingOptions messaging,
    ILogger<TrainingJobHost> logger)
    : IHostedService, IDisposable
{
    /// <summary>How long a trainer whose job ended tries to send the next one (a broker that is down would hold its message).</summary>
    private static readonly TimeSpan NextJobSendTimeout = TimeSpan.FromSeconds(10);

    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _lock = new();
    private Guid? _runningJob;
    private Task _run = Task.CompletedTask;

    /// <summary>The job this trainer runs, if any.</summary>
    public Guid? RunningJob
    {
        get
        {
            lock (_lock) return _runningJob;
        }
    }

    /// <summary>Runs <paramref name="jobId"/>, which this trainer has just claimed, in the background.</summary>
    public void Start(Guid jobId)
    {
        lock (_lock)
        {
            // The consumer takes one message at a time and claims only while no job runs here.
            if (_runningJob is { } running) throw new InvalidOperationException($"training job {running} is running on this trainer already");
            _runningJob = jobId;
            _run = Task.Run(() => RunAsync(jobId));
        }
    }

    private async Task RunAsync(Guid jobId)
    {
        var ended = false;
        try
        {
            using var scope = scopes.CreateScope();
            ended = await scope.ServiceProvider.GetRequiredService<TrainingJobRunner>().RunAsync(jobId, _stopping.Token);
        }
        catch (TrainingJobRunner.GivenBackException)
        {
            await SendGivenBackAsync(jobId);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            logger.LogInformation("Training job {TrainingJobId} stopped: this trainer is stopping, and the job was no longer its own", jobId);
        }
        catch (Exception e)
        {
            // Its end could not be written (the database is away, say): the job's heartbeat goes stale and it is taken over.
            logger.LogError(e, "Training job {TrainingJobId} stopped on an error; it is taken over once its heartbeat is stale (Training:StaleAfterSeconds)", jobId);
        }
        finally
        {
            lock (_lock) _runningJob = null;
        }
        // Only now: the next job's message may come straight back to this trainer, which must be free to claim it.
        if (ended) await SendNextJobAsync(jobId);
    }

    /// <summary>
    /// A job has ended here: the next due one is sent at once, rather than after the sweeper's next pass. Trainers that found
    /// this job running acknowledged the messages of the jobs waiting behind it, so nothing else would start them sooner.
    /// A send that fails is left to the sweeper.
    /// </summary>
    private async Task SendNextJobAsync(Guid endedJobId)
    {
        using var timeout = new CancellationTokenSource(NextJobSendTimeout);
        // Not cancelled by the stop: a job that ignores it (registering, promoting) ends after it, and the next one waiting
        // behind it must still be sent (RabbitMQ takes a send after the bus stopped). Only shortened, as for a given-back job.
        var started = Stopwatch.GetTimestamp();
        await using var stopping = _stopping.Token.Register(() =>
        {
            if (NextJobSendTimeout - Stopwatch.GetElapsedTime(started) > GivenBackSendTimeout) timeout.CancelAfter(GivenBackSendTimeout);
        });
        try
        {
            if (await sweeper.SendNextAsync(timeout.Token) is { } next)
                logger.LogInformation("Training job {TrainingJobId} ended; sent the next one, {NextTrainingJobId}", endedJobId, next);
        }
        catch (Exception e)
        {
            logger.LogWarning("Training job {TrainingJobId} ended, but the next job was not sent ({Reason}); the sweeper sends it within {Seconds} s",
                endedJobId, e.Message, settings.SweepSeconds);
        }
    }

    /// <summary>
    /// The job was given back as this trainer stops: its message is sent again at once, as RabbitMQ redelivered an
    /// unacknowledged one, so another trainer (or this one restarted) takes it without waiting for a sweeper, which passes
    /// only every <c>Training:SweepSeconds</c> and leaves a job queued less than a minute ago alone. Bounded so that shutdown is
    /// not held up; a send that fails is left to the sweeper.
    /// </summary>
    private async Task SendGivenBackAsync(Guid jobId)
    {
        // An in-memory queue dies with this process: the job waits for the next start's sweeper.
        if (messaging.Transport.Equals(MessagingTransports.InMemory, StringComparison.OrdinalIgnoreCase))
        {
            logger.LogInformation("Training job {TrainingJobId} given back: this trainer is stopping, and a sweeper sends the job again", jobId);
            return;
        }
        // The bus, registered after this service, has stopped by now (hosts stop their services in reverse order), so this
        // trainer's own consumer cannot take the message back; MassTransit still sends.
        using var timeout = new CancellationTokenSource(GivenBackSendTimeout);
        try
        {
            await sweeper.SendAsync(jobId, timeout.Token);
            logger.LogInformation("Training job {TrainingJobId} given back: this trainer is stopping; its message was sent again", jobId);
        }
        catch (Exception e)
        {
            logger.LogWarning("Training job {TrainingJobId} given back: this trainer is stopping, but its message was not sent again ({Reason}); a sweeper " +
                "sends it (Training:SweepSeconds is {Seconds})", jobId, e.Message, settings.SweepSeconds);
        }
    }

    /// <summary>How long a stopping trainer tries to send the job it gave back.</summary>
    private static readonly TimeSpan GivenBackSendTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Cancelled once the host has told this trainer to stop (<see cref="StopAsync"/>): a test waits on it to know the stop
    /// has reached a running job, which a fixed wait only guessed on a loaded machine.
    /// </summary>
    internal CancellationToken Stopping => _stopping.Token;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Stops the running job, which gives it back, and waits for that within the host's shutdown timeout.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        Task run;
        lock (_lock) run = _run;
        try
        {
            await run.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("Stopped before its training job was given back; the job is taken over once its heartbeat is stale (Training:StaleAfterSeconds)");
        }
    }

    /// <summary>
    /// Stops a job still running, as <see cref="BackgroundService"/> does: the token source is cancelled, not disposed, since
    /// a host may call <see cref="StopAsync"/> again after disposing its services.
    /// </summary>
    public void Dispose() => _stopping.Cancel();
}
