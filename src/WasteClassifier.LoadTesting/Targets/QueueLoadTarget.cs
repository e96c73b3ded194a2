using System.Collections.Concurrent;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.LoadTesting.Images;

namespace WasteClassifier.LoadTesting.Targets;

/// <summary>
/// Loads the workers alone: the images are stored once (as the API stores uploads), then each request records a
/// queued row and sends ClassifyImage to the classify queue, carrying the image as the API's messages do. Results are read from the database, many ids per query.
/// </summary>
/// <param name="busStartTimeout">How long the broker has to take the bus's connection (default <see cref="BusStartTimeout"/>).</param>
public sealed class QueueLoadTarget(ServiceProvider services, string source, TimeSpan pollInterval, TimeSpan? busStartTimeout = null) : ILoadTarget
{
    /// <summary>A broker that does not answer within this fails the run before the load; it waited for ever.</summary>
    public static readonly TimeSpan BusStartTimeout = TimeSpan.FromSeconds(15);

    private readonly Dictionary<TestImage, StoredImage> _stored = new(ReferenceEqualityComparer.Instance);
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource<TargetResponse>> _waiting = new();
    private readonly ConcurrentDictionary<Guid, Unsent> _unsent = new();
    private readonly CancellationTokenSource _stop = new();
    private Task? _poller;
    private Task? _resender;
    private int _sendFailureLogged;

    /// <summary>The broker and queue sent to: "queue" alone named neither.</summary>
    public string Description
    {
        get
        {
            var messaging = services.GetRequiredService<IConfiguration>().GetSection("Messaging").Get<WasteClassifier.Infrastructure.Messaging.MessagingOptions>()
                            ?? new WasteClassifier.Infrastructure.Messaging.MessagingOptions();
            return $"RabbitMQ at {messaging.RabbitMq.Host}:{messaging.RabbitMq.PortOrDefault}, virtual host '{messaging.RabbitMq.VirtualHost}', queue {messaging.ClassifyQueue}";
        }
    }

    /// <summary>The image rows this target stored or found for the run's images, used or not: candidates for the cleanup.</summary>
    public IReadOnlyList<Guid> PreparedImageIds => _stored.Values.Select(i => i.Id).ToList();

    public async Task PrepareAsync(ImageSet images, CancellationToken cancellationToken)
    {
        // Every image is checked before any is stored: the intake stores the good ones of a set it partly refuses, and a
        // run that stops there would leave them behind.
        var refused = images.All.Select(i => (Image: i, Refusal: Refusal(i))).Where(r => r.Refusal is not null).ToList();
        if (refused.Count > 0)
            throw new InvalidDataException($"{refused.Count} image(s) the API would refuse, e.g. {refused[0].Image.FileName}: {refused[0].Refusal}; nothing was stored");
        await StartBusAsync(cancellationToken);
        using var scope = services.CreateScope();
        // Named after the run, so that a later cleanup (--cleanup --source) finds the images it did not classify.
        var uploads = images.All.Select((image, i) => new UploadedImage(i, RunCleanup.StoredFileName(source, image.FileName), image.ContentType,
            image.Content.Length, image.Content)).ToList();
        // Not cancelled midway (it takes seconds): objects would be left stored without the rows the cleanup finds them by.
        var (accepted, rejected) = await scope.ServiceProvider.GetRequiredService<ImageIntake>().TakeAsync(uploads, CancellationToken.None);
        // Recorded before anything else can fail, so the cleanup sees what was stored.
        foreach (var item in accepted) _stored[images.All[item.File.Index]] = item.Image;
        if (rejected.Count > 0) throw new InvalidDataException($"{rejected.Count} image(s) refused by the intake, e.g. {rejected[0].Filename}: {rejected[0].Message}");
        cancellationToken.ThrowIfCancellationRequested();
        _poller = Task.Run(() => PollLoopAsync(_stop.Token), CancellationToken.None);
        _resender = Task.Run(() => ResendLoopAsync(_stop.Token), CancellationToken.None);
    }

    private bool _busStarted;

    private async Task StartBusAsync(CancellationToken cancellationToken)
    {
        var timeout = busStartTimeout ?? BusStartTimeout;
        using var giveUp = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        giveUp.CancelAfter(timeout);
        try
        {
            // Also bounded from outside: a start that does not heed its token must not hang the run either.
            await services.GetRequiredService<IBusControl>().StartAsync(giveUp.Token).WaitAsync(timeout + TimeSpan.FromSeconds(1), cancellationToken);
            _busStarted = true;
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is OperationCanceledException or TimeoutException or MassTransitException)
        {
            var rabbit = (services.GetRequiredService<IConfiguration>().GetSection("Messaging").Get<WasteClassifier.Infrastructure.Messaging.MessagingOptions>()
                          ?? new WasteClassifier.Infrastructure.Messaging.MessagingOptions()).RabbitMq;
            // Over TLS a refused certificate also looks like a broker that never answers; its reason is logged (RabbitMQ TLS: …).
            throw new TargetUnavailableException($"broker not answering at {rabbit.Host}:{rabbit.PortOrDefault}, virtual host '{rabbit.VirtualHost}' " +
                                                 $"(no connection within {timeout.TotalSeconds:0.#} s: unreachable, or it refused the credentials or the virtual host" +
                                                 (rabbit.UseTls ? ", or its TLS certificate was refused (see the 'RabbitMQ TLS' error above)" : "") + "); " +
                                                 "check Messaging__RabbitMq__Host, __Port, __VirtualHost, __Username and __Password" +
                                                 (rabbit.UseTls ? ", __ServerName and __CaCertificatePath" : ""));
        }
    }

    /// <summary>How long the resend loop waits before its first try, and at most between tries while the broker refuses.</summary>
    internal static readonly TimeSpan FirstResendDelay = TimeSpan.FromMilliseconds(500), MaxResendDelay = TimeSpan.FromSeconds(5);

    private const int ResendBatch = 100;

    /// <param name="Deadline">The run's: a row is not sent after it.</param>
    /// <param name="NotBefore">When it may be sent again.</param>
    private sealed record Unsent(Classification Row, OutgoingImage Image, CancellationToken Deadline, DateTime NotBefore);

    /// <summary>
    /// When a row whose send failed may be sent again: a send that timed out may have reached the broker after all, so it
    /// waits as long as the API's re-publisher waits for an unsent row (a worker takes the message meanwhile, if it got
    /// through); a send the broker refused, at once.
    /// </summary>
    private DateTime ResendAfter(Exception failure) => DateTime.UtcNow + (failure is TimeoutException
        ? TimeSpan.FromSeconds(services.GetRequiredService<IConfiguration>().GetValue("Republish:UnsentAfterSeconds", 5))
        : TimeSpan.Zero);

    /// <summary>Why the API's intake would refuse the image (its own checks: empty, too large, unreadable header, too many pixels), or null.</summary>
    private string? Refusal(TestImage image)
    {
        var uploads = services.GetRequiredService<UploadOptions>();
        if (image.Content.Length > uploads.MaxFileBytes) return $"the file is {image.Content.Length:N0} bytes; the limit is {uploads.MaxFileBytes:N0}";
        var check = ImageTensorWriter.Inspect(image.Content, new ImageLimits { MaxPixels = uploads.MaxPixels });
        return check.Ok ? null : check.Message;
    }

    public async Task<TargetResponse> SubmitAsync(TestImage image, CancellationToken cancellationToken)
    {
        var stored = _stored[image];
        using var scope = services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var row = new Classification
        {
            Id = Guid.CreateVersion7(),
            ImageId = stored.Id,
            Source = source,
            // The upload's own name, as the API records it; the source prefix is the image row's (cleanup finds images by
            // it), and with a long source it did not fit the column.
            FileName = FileNames.Sanitize(image.FileName),
            Status = ClassificationStatus.Queued,
            CreatedAt = DateTime.UtcNow,
        };
        try
        {
            // As the API records and sends an upload: stamped as sent in its insert, so no UPDATE follows the send.
            ClassifyCommandSender.StampBeforeInsert([row], row.CreatedAt);
            db.Classifications.Add(row);
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // No row, so nothing for a worker to take: the deployment did not answer, as a refused connection in HTTP mode.
            // Answered Unavailable, a closed-loop user backs off (a read-only or refusing database failed thousands a second).
            return new TargetResponse(ResponseKind.Unavailable, Reason: "database_error");
        }
        try
        {
            await scope.ServiceProvider.GetRequiredService<ClassifyCommandSender>().SendStampedAsync([row], new Dictionary<Guid, OutgoingImage> { [stored.Id] = new(stored.ObjectKey, image.Content) }, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The row stays queued, as the API leaves an upload whose send failed, and counts as accepted: it is followed
            // until the deadline like any other (a send that timed out may have reached the broker after all). The resend
            // loop sends it again: left to the API's re-publisher, a run with workers but no API waited for it until its
            // deadline.
            _unsent[row.Id] = new Unsent(row, new OutgoingImage(stored.ObjectKey, image.Content), cancellationToken, ResendAfter(e));
            if (Interlocked.Exchange(ref _sendFailureLogged, 1) == 0)
                services.GetRequiredService<ILogger<QueueLoadTarget>>().LogWarning(e, "Could not send a classify message; it is sent again, backing off, and awaited like the others");
        }
        return new TargetResponse(ResponseKind.Accepted, Id: row.Id.ToString());
    }

    /// <summary>Waits for the poll loop's next query, which covers every id asked for since the last one.</summary>
    public Task<TargetResponse> PollAsync(string id, CancellationToken cancellationToken) =>
        _waiting.GetOrAdd(Guid.Parse(id), _ => new TaskCompletionSource<TargetResponse>(TaskCreationOptions.RunContinuationsAsynchronously)).Task.WaitAsync(cancellationToken);

    private async Task PollLoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(pollInterval, cancellationToken);
                var ids = _waiting.Keys.ToList();
                if (ids.Count == 0) continue;
                using var scope = services.CreateScope();
                var rows = await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Classifications.AsNoTracking()
                    .Where(c => ids.Contains(c.Id))
                    .Select(c => new { c.Id, c.Status, c.ErrorCode, c.QueueMs, c.InferenceMs, c.TotalMs, c.BatchSize, c.WorkerId })
                    .ToDictionaryAsync(c => c.Id, cancellationToken);
                foreach (var id in ids)
                {
                    if (!_waiting.TryRemove(id, out var waiter)) continue;
                    if (!rows.TryGetValue(id, out var row)) { waiter.TrySetResult(TargetResponse.Fail("row_missing")); continue; }
                    var timings = new ServerTimings(row.QueueMs, row.InferenceMs, row.TotalMs, row.BatchSize, row.WorkerId);
                    waiter.TrySetResult(row.Status switch
                    {
                        ClassificationStatus.Completed => new TargetResponse(ResponseKind.Completed, Timings: timings),
                        ClassificationStatus.Failed => new TargetResponse(ResponseKind.Failed, Reason: row.ErrorCode ?? "failed", Timings: timings),
                        _ => TargetResponse.Pending,
                    });
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception)
            {
                // A failed query (the database restarting, a dropped connection) leaves the waiters in place; the next tick
                // asks again. Were the loop to end, every later request would wrongly count as unfinished.
            }
        }
    }

    /// <summary>
    /// Sends the rows whose send failed again, a batch at a time, backing off while the broker refuses (bounded by
    /// <see cref="MaxResendDelay"/>), until each is sent or the run's deadline. Rows another sender has sent meanwhile (the
    /// API's re-publisher stamps them later than their insert) or a worker has taken are dropped, not sent twice. A row is
    /// claimed before its send by its stamp, as the re-publisher claims the rows it sends (<see cref="ClassifyCommandSender.ClaimAndSendAsync"/>),
    /// so of the two only one sends it; it is dropped from the list once the broker has it, so nothing failing after that sends it twice.
    /// </summary>
    private async Task ResendLoopAsync(CancellationToken cancellationToken)
    {
        var delay = FirstResendDelay;
        // The stamps of this loop's claims that failed: rows still holding one (the give-back failed too) are still its own, and due.
        var failedClaims = new HashSet<DateTime>();
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(delay, cancellationToken);
                foreach (var (id, unsent) in _unsent)
                    if (unsent.Deadline.IsCancellationRequested) _unsent.TryRemove(id, out _);
                if (_unsent.IsEmpty)
                {
                    delay = FirstResendDelay;
                    continue;
                }
                var now = DateTime.UtcNow;
                var batch = _unsent.Values.Where(u => u.NotBefore <= now).Take(ResendBatch).ToList();
                if (batch.Count == 0) continue;
                var ids = batch.Select(u => u.Row.Id).ToList();
                // Nothing goes out after the run's deadline, nor while a send that began before it waits for the broker.
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource([cancellationToken, .. batch.Select(u => u.Deadline).Distinct()]);
                using var scope = services.CreateScope();
                var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
                // Still due: queued, and unstamped (its send failed), stamped at its insert (the un-stamping failed too) or by a
                // claim of this loop's that failed (giving the stamp back failed too).
                var due = (await db.Classifications.AsNoTracking()
                    .Where(c => ids.Contains(c.Id) && c.Status == ClassificationStatus.Queued)
                    .Select(c => new { c.Id, c.PublishedAt, c.CreatedAt }).ToListAsync(deadline.Token))
                    .Where(c => c.PublishedAt is not { } stamp || stamp == c.CreatedAt || failedClaims.Contains(stamp))
                    .ToDictionary(c => c.Id, c => c.PublishedAt);
                foreach (var id in ids.Where(id => !due.ContainsKey(id))) _unsent.TryRemove(id, out _);
                var rows = batch.Where(u => due.ContainsKey(u.Row.Id)).ToList();
                if (rows.Count == 0) continue;
                // Claimed as the API's re-publisher claims: stamped as sent where it still holds the stamp just read, so a row
                // the re-publisher found due meanwhile goes out once. A failed send gives it that stamp back.
                foreach (var u in rows) u.Row.PublishedAt = due[u.Row.Id];
                var sender = scope.ServiceProvider.GetRequiredService<ClassifyCommandSender>();
                var claim = sender.NewClaimStamp();
                try
                {
                    await sender.ClaimAndSendAsync(rows.Select(u => u.Row).ToList(),
                        rows.DistinctBy(u => u.Row.ImageId).ToDictionary(u => u.Row.ImageId, u => u.Image), claim, deadline.Token);
                }
                catch (Exception e)
                {
                    failedClaims.Add(claim);
                    if (e is TimeoutException)
                        foreach (var u in rows) _unsent[u.Row.Id] = u with { NotBefore = ResendAfter(e) };
                    throw;
                }
                // Sent, or another sender's since the read: either way, not sent again from here.
                foreach (var u in rows) _unsent.TryRemove(u.Row.Id, out _);
                delay = FirstResendDelay;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception)
            {
                // The broker (or the database) still refuses: the rows stay due, tried again after a longer pause.
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxResendDelay.Ticks));
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_poller is not null) await _poller;
        if (_resender is not null) await _resender;
        // A bus that never connected is not waited for: its stop would wait on the connection too.
        if (_busStarted) await services.GetRequiredService<IBusControl>().StopAsync(CancellationToken.None);
        await services.DisposeAsync();
        _stop.Dispose();
    }
}
