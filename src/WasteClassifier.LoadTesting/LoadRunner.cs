using System.Collections.Concurrent;
using WasteClassifier.LoadTesting.Images;
using WasteClassifier.LoadTesting.Targets;

namespace WasteClassifier.LoadTesting;

/// <summary>
/// Drives a target: closed loop (N users, each waiting for its result before the next image) or open loop (R images/s
/// whatever the answers). New submissions stop at the duration, the request bound, once the target refused every image
/// before accepting any, or refused the caller (its key) that many times since it last accepted one
/// (<see cref="MinRefusalsToStop"/>) (a submission throttled after that is
/// not retried: it ends <see cref="RequestOutcome.ThrottledAtEnd"/>); results still outstanding are awaited for the drain time,
/// then the run ends whatever is left, so it always stops by itself. Cancelling the token passed to
/// <see cref="RunAsync"/> (Ctrl+C) ends the run early the same way: what was measured is still returned.
/// Every time and wait is read from <paramref name="clock"/> (the system's by default), so a test can move time itself.
/// </summary>
public sealed class LoadRunner(ILoadTarget target, ImageSet images, LoadTestOptions options, Action<string>? progress = null, TimeProvider? clock = null)
{
    private static readonly TimeSpan MinRetryAfter = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan DefaultRetryAfter = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan UnheldPollPause = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MinUnavailablePause = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxUnavailablePause = TimeSpan.FromSeconds(2);

    /// <summary>Open loop: how often the launching loop wakes to send the arrivals due by then.</summary>
    private static readonly TimeSpan LaunchTick = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// Closed loop: a user whose submission got no answer (see <see cref="RequestRecord.NoAnswer"/>) waits this long before
    /// its next, doubling up to the most, until one gets an answer.
    /// </summary>
    internal static readonly TimeSpan MinFailurePause = TimeSpan.FromMilliseconds(100), MaxFailurePause = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Sending stops when, before any submission was accepted, at least this many were refused and every image of the set
    /// was among them (see <see cref="IsRefusal"/>): a refusal is an answer, so users send again at once, and a wrong folder
    /// or a missing key flooded the server with refusals for the whole duration. Every image, not a count alone: with
    /// many users, the first answers can all be one bad file's refusals while the good ones are still being stored.
    /// </summary>
    internal const int MinRefusalsToStop = 10;

    /// <summary>
    /// A refusal of the caller, not of the image (a key missing, unknown or revoked, or without the role or source the run
    /// needs): every image would be refused alike, so this many since the last acceptance stop sending whatever came before
    /// and however many images the set has. A key revoked mid-run kept the users sending refusals to the end, and a missing
    /// key with a folder of thousands of images sent each once before the every-image rule stopped it.
    /// </summary>
    internal static bool IsCallerRefusal(string? reason) =>
        reason is not null && (reason.StartsWith("http_401", StringComparison.Ordinal) || reason.StartsWith("http_403", StringComparison.Ordinal));

    private readonly ConcurrentQueue<RequestRecord> _records = new();
    private readonly TimeProvider _time = clock ?? TimeProvider.System;
    private long _started;
    private int _launched;
    private int _inFlight;
    private int _arrivalsDelayed;
    private int _arrivalsNotSent;
    private CancellationToken _interrupted;

    private readonly Lock _refusalGate = new();
    private readonly HashSet<TestImage> _refusedImages = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, int> _refusalReasons = new(StringComparer.Ordinal);
    private bool _anyAccepted;
    private int _accepted;
    private readonly Dictionary<string, int> _callerRefusalsSinceAccepted = new(StringComparer.Ordinal);
    private string? _refusedEverything;
    private CancellationTokenSource? _stopRefused;

    /// <summary>The images sent: <c>images</c>, or in queue mode, unless told to repeat them, copies new to this run.</summary>
    private ImageSet? _images;

    public async Task<LoadRunResult> RunAsync(CancellationToken cancellationToken = default)
    {
        options.Validate();
        if ((options.StampsUploads || options.StampsRunImages) && images.FirstUnstampable() is { } unstampable)
            throw new ArgumentException($"{unstampable.FileName} is not a JPEG or PNG, so it cannot be made unique per upload; send the images unchanged instead");
        _images = options.StampsRunImages ? images.StampedOnce() : images;
        await target.PrepareAsync(_images, cancellationToken);
        _interrupted = cancellationToken;
        var startedAt = _time.GetUtcNow();
        // The clock starts before the timers that end the run: the elapsed time is never short of the duration.
        _started = _time.GetTimestamp();
        using var durationOver = new CancellationTokenSource(options.Duration, _time);
        using var drainOver = new CancellationTokenSource(options.Duration + options.Drain, _time);
        using var stopRefused = new CancellationTokenSource();
        _stopRefused = stopRefused;
        using var stopLaunching = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, durationOver.Token, stopRefused.Token);
        using var hardStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, drainOver.Token);
        using var reporter = progress is null ? null : _time.CreateTimer(_ => progress(Progress()), null, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5));

        var requests = options.ClosedLoop
            ? ClosedLoopAsync(stopLaunching.Token, hardStop.Token)
            : OpenLoopAsync(stopLaunching.Token, hardStop.Token);
        await requests;
        var elapsed = Elapsed;
        // Read once the requests have ended, before anything else: a signal that comes after (while the result and the report
        // are put together) ended nothing; read later, it had a complete run reported interrupted.
        var interrupted = cancellationToken.IsCancellationRequested;
        progress?.Invoke(Progress());
        return new LoadRunResult(options, target.Description, startedAt, elapsed, _records.ToList(),
            _arrivalsDelayed, _arrivalsNotSent, interrupted, RefusedEverything());
    }

    /// <summary>Requests started and not yet finished: a test with a manual clock moves it only once every answer was handled.</summary>
    internal int InFlight => Volatile.Read(ref _inFlight);

    private string Progress()
    {
        var records = _records.ToArray();
        return $"{Elapsed.TotalSeconds,6:F1} s: {records.Count(r => r.AcceptedS is not null)} accepted, " +
               $"{records.Count(r => r.Outcome == RequestOutcome.Completed)} completed, {records.Count(r => r.Outcome == RequestOutcome.Failed)} failed, " +
               $"{InFlight} in flight, {records.Sum(r => r.Throttled)} throttled";
    }

    private Task ClosedLoopAsync(CancellationToken stopLaunching, CancellationToken hardStop) =>
        Task.WhenAll(Enumerable.Range(0, options.Users).Select(user => Task.Run(async () =>
        {
            try
            {
                await Task.Delay(options.Ramp * user / options.Users, _time, stopLaunching);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            // A user due at or after the end never starts, even when its timer fires before the run's own stop timer.
            if (Elapsed >= options.Duration) return;
            // A submission that got no answer (a target down) has no result to wait for: without a pause the user sent again
            // at once, thousands of failures a second. An answer, a 400 or a 500 too, came at the server's own pace: pausing
            // after it sent less than the users asked for (a run with scattered 500s paced itself). 429 and 503 are waited out
            // as the server asks (SubmitAsync). Each failure is counted once, by its reason.
            var pause = MinFailurePause;
            // The interrupt itself too: it cancels the tokens linked to it one after the other, and a request ended by the
            // drain's could come back here before the duration's was cancelled.
            while (!stopLaunching.IsCancellationRequested && !_interrupted.IsCancellationRequested && TryLaunch())
            {
                var record = await ExecuteAsync(stopLaunching, hardStop);
                if (!record.NoAnswer)
                {
                    pause = MinFailurePause;
                    continue;
                }
                try
                {
                    await Task.Delay(pause, _time, stopLaunching);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                pause = TimeSpan.FromTicks(Math.Min(MaxFailurePause.Ticks, pause.Ticks * 2));
            }
        }, CancellationToken.None)));

    private async Task OpenLoopAsync(CancellationToken stopLaunching, CancellationToken hardStop)
    {
        var running = new List<Task>();
        using var slots = new SemaphoreSlim(options.MaxInFlight);
        var launched = 0L;
        try
        {
            while (!stopLaunching.IsCancellationRequested)
            {
                // Launch every arrival due by now: the integral of the (ramped) rate, so high rates need no fine timer.
                // Arrivals scheduled after the duration never happen, however late this loop wakes up.
                var due = (long)Arrivals(Math.Min(Elapsed.TotalSeconds, options.Duration.TotalSeconds));
                while (launched < due && !RequestBoundReached() && !stopLaunching.IsCancellationRequested)
                {
                    // Counted once it has its slot: one still waiting when the duration ends is counted as not sent, not here too.
                    var delayed = slots.CurrentCount == 0;
                    await slots.WaitAsync(stopLaunching);
                    if (delayed) _arrivalsDelayed++;
                    if (!TryLaunch()) { slots.Release(); break; }
                    launched++;
                    running.Add(Launch());
                }
                if (RequestBoundReached()) break;
                await Task.Delay(LaunchTick, _time, stopLaunching);
            }
        }
        catch (OperationCanceledException) when (stopLaunching.IsCancellationRequested)
        {
            // The duration is over: no more arrivals.
        }
        // Arrivals due before the end still go out when this loop woke up late: on a busy machine its timer can be a second
        // behind, and the run would otherwise send fewer than rate × duration.
        // An interrupted run sends nothing more, nor one whose images were all refused. An arrival with no free slot is not
        // sent: it is counted instead.
        var dueByEnd = _interrupted.IsCancellationRequested || RefusedEverything() is not null ? launched : (long)Arrivals(options.Duration.TotalSeconds);
        while (launched < dueByEnd && !RequestBoundReached())
        {
            var free = slots.Wait(0);
            // Nor is one whose slot the hard stop freed (--drain 0, or this loop woke up that late): launched, it was counted
            // submitted and failed (not_accepted_by_deadline) though nothing went out. Checked once the slot is taken: the
            // stop is set before the request it ended gives its slot back.
            if (free && hardStop.IsCancellationRequested)
            {
                slots.Release();
                free = false;
            }
            if (!free)
            {
                _arrivalsNotSent = (int)(dueByEnd - launched);
                break;
            }
            if (!TryLaunch()) { slots.Release(); break; }
            launched++;
            running.Add(Launch());
        }
        await Task.WhenAll(running);

        Task Launch() => Task.Run(async () =>
        {
            try { await ExecuteAsync(stopLaunching, hardStop); }
            finally { slots.Release(); }
        }, CancellationToken.None);
    }

    /// <summary>Arrivals expected by <paramref name="t"/> seconds: the rate rises linearly over the ramp, then holds.</summary>
    public static double Arrivals(double t, double rate, double ramp) =>
        ramp <= 0 ? rate * t
        : t < ramp ? rate * t * t / (2 * ramp)
        : rate * ramp / 2 + rate * (t - ramp);

    private double Arrivals(double t) => Arrivals(t, options.Rate, options.Ramp.TotalSeconds);

    private bool TryLaunch() => Interlocked.Increment(ref _launched) <= options.MaxRequests;

    private bool RequestBoundReached() => Volatile.Read(ref _launched) >= options.MaxRequests;

    private async Task<RequestRecord> ExecuteAsync(CancellationToken stopLaunching, CancellationToken hardStop)
    {
        var record = new RequestRecord { StartedS = Now() };
        _records.Enqueue(record);
        Interlocked.Increment(ref _inFlight);
        try
        {
            var id = await SubmitAsync(record, stopLaunching, hardStop);
            if (id is null) return record;
            await WaitForResultAsync(record, id, hardStop);
        }
        // An interruption cancels the tokens linked to it one after the other: a wait on the first may end before the second is.
        catch (OperationCanceledException) when (hardStop.IsCancellationRequested || _interrupted.IsCancellationRequested)
        {
            // Open when the run was interrupted: not failed (the server may still complete it; one run counted 8 failures
            // while the database held all 127 rows completed), counted apart.
            record.Outcome = _interrupted.IsCancellationRequested ? RequestOutcome.OutstandingAtInterrupt : RequestOutcome.Unfinished;
            record.Reason = _interrupted.IsCancellationRequested ? "interrupted"
                : record.AcceptedS is null ? "not_accepted_by_deadline" : "not_finished_by_deadline";
        }
        catch (Exception e)
        {
            // A target that throws (an answer it could not read, a bug) fails this request, not the whole run and its report.
            // Thrown by a submission, it would be thrown again at once: the user backs off as for no answer.
            Finish(record, RequestOutcome.Failed, $"exception_{e.GetType().Name}", null);
            record.NoAnswer = record.AcceptedS is null;
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
        return record;
    }

    private async Task<string?> SubmitAsync(RequestRecord record, CancellationToken stopLaunching, CancellationToken hardStop)
    {
        while (true)
        {
            var attempt = Now();
            var original = _images!.Next();
            var image = options.StampsUploads ? original with { Content = UniqueStamp.Apply(original.Content, Guid.NewGuid()) } : original;
            var answer = await target.SubmitAsync(image, hardStop);
            switch (answer.Kind)
            {
                case ResponseKind.Accepted:
                    lock (_refusalGate)
                    {
                        _anyAccepted = true;
                        _accepted++;
                        _callerRefusalsSinceAccepted.Clear();
                    }
                    record.AcceptedS = Now();
                    record.SubmitMs = (record.AcceptedS.Value - attempt) * 1000;
                    return answer.Id;
                case ResponseKind.Throttled:
                    // Once launching has stopped, a throttled submission is not retried: retried through the drain, it would be
                    // accepted after the duration (and counted in the accepted rate over the duration). It ends not accepted.
                    if (stopLaunching.IsCancellationRequested) return NotRetried(record);
                    try
                    {
                        await Task.Delay(RetryDelay(answer.RetryAfter, options.Duration + options.Drain), _time, stopLaunching);
                    }
                    // Ctrl+C during the wait too: nothing was accepted nor in flight, so nothing is open at the interrupt. Whatever
                    // the drain's state: with --drain 0 its end is the duration's, and its timer may fire first (it was then
                    // counted failed, not_accepted_by_deadline).
                    catch (OperationCanceledException) when (stopLaunching.IsCancellationRequested)
                    {
                        return NotRetried(record);
                    }
                    // Counted once waited out: an answer whose wait the end of submissions cut short ended the request instead.
                    record.Throttled++;
                    break;
                // No answer (a connection refused or dropped, a timeout) fails it too: not sent again, since the upload may
                // have been accepted before the answer was lost.
                default:
                    Finish(record, RequestOutcome.Failed, answer.Reason ?? "submit_failed", null);
                    if (answer.Kind == ResponseKind.Failed && IsRefusal(answer.Reason)) Refused(original, answer.Reason!, stopLaunching);
                    // Unavailable, or a connection that could not be made at all (HttpLoadTarget names those connection_…:
                    // a certificate, a name that does not resolve): hammering it makes no sense.
                    record.NoAnswer = answer.Kind == ResponseKind.Unavailable || answer.Reason?.StartsWith("connection_", StringComparison.Ordinal) == true;
                    return null;
            }
        }
    }

    /// <summary>
    /// A refusal no retry mends: a 4xx answer (the request, its image or its key refused: 400, 401, 403, 404, 413, 415,
    /// 422, …) but a 408 (a timeout) and a 429 (throttled, waited out), or an answer that accepted none of the upload.
    /// </summary>
    internal static bool IsRefusal(string? reason) =>
        reason == "rejected" || reason is ['h', 't', 't', 'p', '_', '4', >= '0' and <= '9', >= '0' and <= '9', ..] && !reason.StartsWith("http_408", StringComparison.Ordinal);

    private void Refused(TestImage image, string reason, CancellationToken stopLaunching)
    {
        lock (_refusalGate)
        {
            // A refusal answered once sending had stopped (the duration, the request bound, Ctrl+C) stops nothing: recorded, it
            // named the refusals as the reason (stopped_by refused) in place of the one that did.
            if (_refusedEverything is not null || stopLaunching.IsCancellationRequested || RequestBoundReached()) return;
            // The counts are those when sending stopped: a request still in flight then and refused later is in the failures
            // by reason, not here.
            _refusedEverything = CallerRefused(reason) ?? EveryImageRefused(image, reason);
            if (_refusedEverything is null) return;
        }
        // Outside the lock: cancelling runs the run's own callbacks.
        _stopRefused!.Cancel();
    }

    /// <summary>Under the refusal gate: why sending stops, if this refusal of the caller is the last one <see cref="IsCallerRefusal"/> allows.</summary>
    private string? CallerRefused(string reason)
    {
        if (!IsCallerRefusal(reason)) return null;
        _callerRefusalsSinceAccepted[reason] = _callerRefusalsSinceAccepted.GetValueOrDefault(reason) + 1;
        var refusals = _callerRefusalsSinceAccepted.Values.Sum();
        if (refusals < MinRefusalsToStop) return null;
        var since = _anyAccepted ? $"since it last accepted one ({_accepted} accepted before)" : "before accepting any";
        return $"the target refused the caller (the API key, its role or its sources) in {refusals} submissions {since}; sending stopped: {Tally(_callerRefusalsSinceAccepted)}";
    }

    /// <summary>Under the refusal gate: why sending stops, if this refusal completes the set before any acceptance (<see cref="MinRefusalsToStop"/>).</summary>
    private string? EveryImageRefused(TestImage image, string reason)
    {
        if (_anyAccepted) return null;
        _refusedImages.Add(image);
        _refusalReasons[reason] = _refusalReasons.GetValueOrDefault(reason) + 1;
        var refusals = _refusalReasons.Values.Sum();
        if (refusals < MinRefusalsToStop || _refusedImages.Count < _images!.All.Count) return null;
        return $"the target refused all {_images.All.Count} image(s) of the set before accepting any; sending stopped once {refusals} submissions were refused: {Tally(_refusalReasons)}";
    }

    private static string Tally(Dictionary<string, int> reasons) =>
        string.Join(", ", reasons.OrderByDescending(r => r.Value).ThenBy(r => r.Key, StringComparer.Ordinal).Select(r => $"{r.Key} ×{r.Value}"));

    private string? RefusedEverything()
    {
        lock (_refusalGate) return _refusedEverything;
    }

    private async Task WaitForResultAsync(RequestRecord record, string id, CancellationToken hardStop)
    {
        // A held poll returns when the result is there, so the next one follows at once.
        var wait = target.PollsWait ? TimeSpan.Zero : options.PollInterval;
        // Set while the polls go unanswered: the reason the request fails with if they still are at the deadline.
        string? unavailable = null;
        var unavailablePause = MinUnavailablePause;
        try
        {
            while (true)
            {
                if (wait > TimeSpan.Zero) await Task.Delay(wait, _time, hardStop);
                var asked = Now();
                var answer = await target.PollAsync(id, hardStop);
                if (answer.Kind != ResponseKind.Unavailable) (unavailable, unavailablePause) = (null, MinUnavailablePause);
                switch (answer.Kind)
                {
                    case ResponseKind.Completed:
                        Finish(record, RequestOutcome.Completed, null, answer.Timings);
                        return;
                    case ResponseKind.Failed:
                        Finish(record, RequestOutcome.Failed, answer.Reason ?? "failed", answer.Timings);
                        return;
                    case ResponseKind.Throttled:
                        await Task.Delay(RetryDelay(answer.RetryAfter, options.Duration + options.Drain), _time, hardStop);
                        record.Throttled++;
                        break;
                    case ResponseKind.Unavailable:
                        // A restarting API, or its proxy: the server may still complete the request, so ask again after a
                        // short pause, backing off, until the deadline.
                        unavailable = answer.Reason ?? "poll_unavailable";
                        await Task.Delay(unavailablePause, _time, hardStop);
                        unavailablePause = TimeSpan.FromTicks(Math.Min(MaxUnavailablePause.Ticks, unavailablePause.Ticks * 2));
                        break;
                    default:
                        if (!target.PollsWait) wait = TimeSpan.FromTicks(Math.Min(options.MaxPollInterval.Ticks, (long)(wait.Ticks * 1.5)));
                        // A held poll answered "not yet" long before its wait was up was not held (a server or proxy that
                        // ignores ?wait=): pause before the next one rather than ask again at once, in a busy loop.
                        else wait = Now() - asked < options.LongPoll.TotalSeconds / 2 ? UnheldPollPause : TimeSpan.Zero;
                        break;
                }
            }
        }
        catch (OperationCanceledException) when (unavailable is not null && hardStop.IsCancellationRequested && !_interrupted.IsCancellationRequested)
        {
            Finish(record, RequestOutcome.Failed, unavailable, null);
        }
    }

    private void Finish(RequestRecord record, RequestOutcome outcome, string? reason, ServerTimings? server)
    {
        record.FinishedS = Now();
        record.ClientMs = (record.FinishedS.Value - record.StartedS) * 1000;
        record.Server = server;
        record.Reason = reason;
        record.Outcome = outcome;
    }

    private static string? NotRetried(RequestRecord record)
    {
        // Nothing failed: the server asked to wait past the end of submissions. Counted apart, as open-loop arrivals not sent.
        record.Outcome = RequestOutcome.ThrottledAtEnd;
        record.Reason = "throttled";
        return null;
    }

    /// <summary>
    /// The server's Retry-After, however long: the wait ends anyway when the run stops waiting (at the duration for a
    /// submission, at the hard stop for a poll). Never longer than the run itself, which keeps a far-off date within
    /// Task.Delay's limit (49 days).
    /// </summary>
    internal static TimeSpan RetryDelay(TimeSpan? retryAfter, TimeSpan runLength) =>
        retryAfter is not { } value ? DefaultRetryAfter : value < MinRetryAfter ? MinRetryAfter : value > runLength ? runLength : value;

    private TimeSpan Elapsed => _time.GetElapsedTime(_started);

    private double Now() => Elapsed.TotalSeconds;
}
