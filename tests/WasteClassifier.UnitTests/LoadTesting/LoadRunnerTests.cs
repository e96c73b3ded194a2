using System.Diagnostics;
using WasteClassifier.Api.Stats;
using WasteClassifier.LoadTesting;
using WasteClassifier.LoadTesting.Images;
using WasteClassifier.LoadTesting.Reporting;
using WasteClassifier.LoadTesting.Targets;

namespace WasteClassifier.UnitTests.LoadTesting;

public sealed class LoadRunnerTests
{
    private static readonly ImageSet Images = new([new TestImage("a.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg")]);

    private static LoadTestOptions Options(int users = 0, double rate = 0, int maxRequests = 100_000, double durationS = 30, double drainS = 30) => new()
    {
        Target = new Uri("http://127.0.0.1:1/"),
        Users = users,
        Rate = rate,
        MaxRequests = maxRequests,
        Duration = TimeSpan.FromSeconds(durationS),
        Drain = TimeSpan.FromSeconds(drainS),
        PollInterval = TimeSpan.FromMilliseconds(5),
        MaxPollInterval = TimeSpan.FromMilliseconds(10),
    };

    [Fact]
    public async Task ClosedLoop_KnownRunOf40_CountsAndPercentilesMatch()
    {
        var target = new FakeLoadTarget { FailEvery = 10, ThrottleEvery = 7 };

        var result = await new LoadRunner(target, Images, Options(users: 4, maxRequests: 40)).RunAsync();
        var report = LoadReport.From(result);

        Assert.Equal(40, report.Counts.Submitted);
        Assert.Equal(36, report.Counts.Accepted);
        Assert.Equal(36, report.Counts.Completed);
        Assert.Equal(4, report.Counts.Failed);
        Assert.Equal(new Dictionary<string, int> { ["boom"] = 4 }, report.Counts.FailuresByReason);
        Assert.Equal(10.0, report.Counts.FailurePercent);
        // Submissions 7, 14, 21, 28 and 35 were each refused once, then retried.
        Assert.Equal(5, report.Counts.Throttled);
        // Completed submissions are n = 1..40 without multiples of 10, each with total_ms = 10 n.
        var expected = LatencySummary.FromSorted(Enumerable.Range(1, 40).Where(n => n % 10 != 0).Select(n => 10.0 * n).ToList());
        Assert.Equal(expected, report.LatencyMs.EndToEnd);
        Assert.Equal(36, report.LatencyMs.QueueWait.Count);
        Assert.Equal(5, report.LatencyMs.Inference.P99);
        Assert.Equal(36, report.EndToEndHistogram.Sum(b => b.Count));
        Assert.Equal(36, report.Timeline.Sum(p => p.Completed));
    }

    [Fact]
    public async Task OpenLoop_ResultsNeverArrive_StopsByItselfAfterDurationAndDrain()
    {
        // The clock jumps the whole duration at once: the launching loop wakes up only at its end, as on a stalled machine.
        var clock = new ManualClock();
        var target = new FakeLoadTarget { NeverFinishes = true };
        var run = new LoadRunner(target, Images, Options(rate: 50, durationS: 1, drainS: 0.5), clock: clock).RunAsync();
        await WaitUntilAsync(() => clock.PendingWithin(TimeSpan.FromMilliseconds(5)) == 1);
        clock.Advance(TimeSpan.FromSeconds(1));
        await WaitUntilAsync(() => target.Contents.Count == 50);
        clock.Advance(TimeSpan.FromSeconds(0.5));

        var result = await run.WaitAsync(TimeSpan.FromSeconds(30));
        var report = LoadReport.From(result);

        // Bounded by duration and drain.
        Assert.Equal(TimeSpan.FromSeconds(1.5), result.Elapsed);
        // 50 images/s for 1 s: every arrival due by the end is sent, however late the loop woke up.
        Assert.Equal(50, report.Counts.Submitted);
        Assert.Equal(0, report.Counts.ArrivalsDelayed);
        Assert.Equal(report.Counts.Submitted, report.Counts.Unfinished);
        Assert.Equal(report.Counts.Submitted, report.Counts.FailuresByReason["not_finished_by_deadline"]);
        Assert.Equal(0, report.Counts.Completed);
    }

    [Fact]
    public async Task OpenLoop_MaxInFlightReached_LateAndUnsentArrivalsCounted()
    {
        // Five requests that never finish hold every slot until the drain is over. The launching loop runs on a context this
        // test runs: the arrivals due by the end are sent (or not) before the drain's end frees the slots.
        var clock = new ManualClock();
        var context = new ManualContext();
        var target = new FakeLoadTarget { NeverFinishes = true };
        var options = Options(rate: 50, durationS: 1, drainS: 5) with { MaxInFlight = 5 };
        var run = context.Start(() => new LoadRunner(target, Images, options, clock: clock).RunAsync());
        clock.Advance(TimeSpan.FromSeconds(0.5));
        // 25 arrivals due: five sent, the sixth waits for a slot.
        context.RunPosted();
        clock.Advance(TimeSpan.FromSeconds(0.5));
        // The duration's end ended that wait: the arrivals due by then go out if they have a slot.
        await WaitUntilAsync(() => context.Posted > 0);
        context.RunPosted();
        clock.Advance(TimeSpan.FromSeconds(5));

        var result = await RunOnAsync(context, run);
        var report = LoadReport.From(result);

        // Five requests hold every slot to the end: the sixth arrival waits for one until the duration is over, and the
        // 45 arrivals due by then (the sixth included) are never sent; none was sent late.
        Assert.Equal(TimeSpan.FromSeconds(6), result.Elapsed);
        Assert.Equal(5, report.Counts.Submitted);
        Assert.Equal(0, report.Counts.ArrivalsDelayed);
        Assert.Equal(45, report.Counts.ArrivalsNotSent);
        Assert.Contains("45 due before the end were not sent", MarkdownReport.Render(report));
    }

    [Fact]
    public async Task OpenLoop_LaunchingLoopWakesAfterTheHardStop_ArrivalsDueNotSent()
    {
        // --drain 0: the duration's end is the hard stop's too, and the launching loop wakes after both (a busy machine).
        // The 50 arrivals due by the end were launched then, each counted submitted and failed though none went out.
        var clock = new ManualClock();
        var context = new ManualContext();
        var target = new FakeLoadTarget { NeverFinishes = true };
        var run = context.Start(() => new LoadRunner(target, Images, Options(rate: 50, durationS: 1, drainS: 0), clock: clock).RunAsync());
        clock.Advance(TimeSpan.FromSeconds(1));
        context.RunPosted();

        var result = await RunOnAsync(context, run);
        var report = LoadReport.From(result);

        Assert.Equal(TimeSpan.FromSeconds(1), result.Elapsed);
        Assert.Empty(target.Contents);
        Assert.Equal((0, 0, 50), (report.Counts.Submitted, report.Counts.Failed, report.Counts.ArrivalsNotSent));
    }

    [Fact]
    public async Task OpenLoop_ThrottledWhenTheDurationEnds_NotRetriedThroughTheDrain()
    {
        // The clock moves to the duration's end and no further: a run waiting into its drain would never end.
        var clock = new ManualClock();
        var run = new LoadRunner(new FakeLoadTarget { AlwaysThrottles = TimeSpan.FromMilliseconds(100) }, Images, Options(rate: 10, durationS: 1, drainS: 60), clock: clock).RunAsync();
        await WaitUntilAsync(() => clock.PendingWithin(TimeSpan.FromMilliseconds(5)) == 1);
        clock.Advance(TimeSpan.FromSeconds(1));

        var result = await run.WaitAsync(TimeSpan.FromSeconds(30));
        var report = LoadReport.From(result);

        // Retried through the drain, they would be accepted after the duration, or end only at its end.
        Assert.Equal(TimeSpan.FromSeconds(1), result.Elapsed);
        // Nothing failed: the ten arrivals are counted apart, as never sent.
        Assert.Equal(10, report.Counts.ThrottledAtEnd);
        Assert.Equal(0, report.Counts.Submitted);
        Assert.Equal(0, report.Counts.Accepted);
        Assert.Equal(0, report.Counts.Failed);
        Assert.Empty(report.Counts.FailuresByReason);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ClosedLoop_DrainZeroUserWaitingOutAThrottleAtTheEnd_ThrottledAtEndNotFailed(bool drainTimerFirst)
    {
        // --drain 0: the duration's end and the drain's are one instant, and the system clock fires those two timers in
        // either order. Each submission is answered 429 with Retry-After: 0.7 s: waited out once (0.7 s), then cut short by
        // the end at 1 s. Nothing was accepted nor in flight, so nothing is open and nothing failed.
        var clock = new ManualClock { TiesLatestFirst = drainTimerFirst };
        var target = new FakeLoadTarget { AlwaysThrottles = TimeSpan.FromSeconds(0.7) };
        var run = new LoadRunner(target, Images, Options(users: 1, durationS: 1, drainS: 0), clock: clock).RunAsync();

        // The user waits for its retry beside the duration's end and the drain's.
        await WaitUntilAsync(() => target.Contents.Count == 1 && clock.Pending().Count == 3);
        clock.Advance(TimeSpan.FromSeconds(0.7));
        await WaitUntilAsync(() => target.Contents.Count == 2 && clock.Pending().Count == 3);
        clock.Advance(TimeSpan.FromSeconds(0.3));
        var report = LoadReport.From(await run.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal((1, 0, 0, 0), (report.Counts.ThrottledAtEnd, report.Counts.Submitted, report.Counts.Failed, report.Counts.Unfinished));
        Assert.Empty(report.Counts.FailuresByReason);
        Assert.Equal(1, report.Counts.Throttled);
    }

    [Fact]
    public async Task ClosedLoop_ThrottledWithRetryAfterPastTheCutOff_NothingFails()
    {
        // After four accepted, every submission is answered 429 with Retry-After: 60: each user's last one waits until the
        // duration ends and is not retried. (By count, not time: on a loaded machine a user could sit out a time window.)
        var target = new FakeLoadTarget { ThrottlesAfterAccepting = 4 };

        var report = LoadReport.From(await new LoadRunner(target, Images, Options(users: 2, durationS: 2, drainS: 5)).RunAsync());

        Assert.Equal(2, report.Counts.ThrottledAtEnd);
        Assert.Equal(0, report.Counts.Failed);
        Assert.Empty(report.Counts.FailuresByReason);
        Assert.True(report.Counts.Completed > 0);
        Assert.Equal(report.Counts.Completed, report.Counts.Submitted);
        // The two answers were not waited out: their waits were cut short.
        Assert.Equal(0, report.Counts.Throttled);
        Assert.Contains("Throttled when submissions stopped, not retried: 2", MarkdownReport.Render(report));
        Assert.Contains("\"throttled_at_end\": 2", System.Text.Json.JsonSerializer.Serialize(report, ReportFiles.Json));
    }

    [Theory]
    [InlineData(ResponseKind.Unavailable, "connection_refused")]
    [InlineData(ResponseKind.Unavailable, "timeout")]
    [InlineData(ResponseKind.Failed, "connection_nameresolutionerror")]
    public async Task ClosedLoop_SubmissionGetsNoAnswer_UserBacksOffDoubling(ResponseKind kind, string reason)
    {
        // A target that is down: each user sent again at once, thousands of failures a second.
        var clock = new ManualClock();
        var target = new FakeLoadTarget { SubmitAnswer = new TargetResponse(kind, Reason: reason) };
        var run = new LoadRunner(target, Images, Options(users: 1, durationS: 1, drainS: 1), clock: clock).RunAsync();

        // Once the user has sent and waits (its pause, the duration's end at 1 s, the drain's at 2 s), time moves on to
        // the first of them.
        var sentAt = new List<double>();
        while (true)
        {
            await WaitUntilAsync(() => target.Contents.Count == sentAt.Count + 1 && clock.Pending().Count == 3);
            sentAt.Add(clock.Now.TotalSeconds);
            var next = clock.Pending()[0];
            if (next >= TimeSpan.FromSeconds(1)) break;
            clock.Advance(next - clock.Now);
        }
        clock.Advance(TimeSpan.FromSeconds(2));
        var report = LoadReport.From(await run.WaitAsync(TimeSpan.FromSeconds(30)));

        // Pauses of 100, 200 and 400 ms; the next (800 ms) would end after the duration.
        Assert.Equal([0, 0.1, 0.3, 0.7], sentAt.Select(t => Math.Round(t, 6)));
        Assert.Equal(4, report.Counts.Submitted);
        Assert.Equal(new Dictionary<string, int> { [reason] = 4 }, report.Counts.FailuresByReason);
    }

    [Theory]
    [InlineData("http_500")]
    [InlineData("invalid_response")]
    public async Task ClosedLoop_EverySubmissionAnsweredAFailure_UsersSendAgainAtOnce(string reason)
    {
        // Time never moves here: a user that paused after an answer would never send again, and the run never end.
        var clock = new ManualClock();
        var target = new FakeLoadTarget { SubmitAnswer = TargetResponse.Fail(reason) };

        var report = LoadReport.From(await new LoadRunner(target, Images, Options(users: 2, maxRequests: 40), clock: clock).RunAsync().WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal(40, report.Counts.Submitted);
        Assert.Equal(new Dictionary<string, int> { [reason] = 40 }, report.Counts.FailuresByReason);
        Assert.Equal(TimeSpan.Zero, clock.Now);
    }

    private static readonly ImageSet ThreeImages = new(new[] { "a.jpg", "b.jpg", "c.jpg" }.Select(name => new TestImage(name, [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg")).ToList());

    [Theory]
    [InlineData("http_400_not_an_image")]
    [InlineData("http_404")]
    [InlineData("rejected")]
    public async Task ClosedLoop_EveryImageRefused_StopsSendingNamingTheRefusal(string reason)
    {
        // A wrong folder, or a deployment that wants a key: a refusal is an answer, so the users sent again at once, for the
        // whole duration. Time never moves here: only the guard can end the run before its 600 s.
        var clock = new ManualClock();
        var target = new FakeLoadTarget { SubmitAnswer = TargetResponse.Fail(reason) };

        var result = await new LoadRunner(target, ThreeImages, Options(users: 2, maxRequests: 1000, durationS: 600), clock: clock).RunAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var report = LoadReport.From(result);

        // Stopped at the tenth refusal, every image refused; the other user's request in flight then may be one more.
        Assert.InRange(report.Counts.Submitted, LoadRunner.MinRefusalsToStop, LoadRunner.MinRefusalsToStop + 1);
        Assert.Equal(report.Counts.Submitted, report.Counts.Failed);
        Assert.Equal(TimeSpan.Zero, clock.Now);
        Assert.Equal(StopReasons.Refused, report.Run.StoppedBy);
        Assert.Equal($"the target refused all 3 image(s) of the set before accepting any; sending stopped once 10 submissions were refused: {reason} ×10", report.Run.RefusedEverything);
        Assert.Contains($"**Stopped early**: the target refused all 3 image(s) of the set before accepting any; sending stopped once 10 submissions were refused: {reason} ×10", MarkdownReport.Render(report));
        // The other user's refusal, if it came after the stop, is in the failures by reason, and report.md says so.
        Assert.Equal(new Dictionary<string, int> { [reason] = report.Counts.Submitted }, report.Counts.FailuresByReason);
        Assert.Contains("Requests still in flight then and refused later are counted in the failures by reason below.", MarkdownReport.Render(report));
        Assert.Contains($"\"refused_everything\": \"the target refused all 3", System.Text.Json.JsonSerializer.Serialize(report, ReportFiles.Json));
    }

    [Theory]
    [InlineData(StopReasons.RequestBound)]
    [InlineData(StopReasons.Duration)]
    [InlineData(StopReasons.Interrupted)]
    public async Task ClosedLoop_EveryImageRefusedOnceSendingStopped_StopReasonIsWhatStoppedIt(string stoppedBy)
    {
        // Ten submissions in flight when sending stops (--max-requests 10 against a deployment that wants a key, the duration,
        // Ctrl+C), then all refused: the tenth refusal came too late to stop anything, and reported stopped_by refused in
        // place of the real reason.
        var clock = new ManualClock();
        var answers = new TaskCompletionSource();
        var target = new FakeLoadTarget { SubmitAnswer = TargetResponse.Fail("http_401_unauthorized"), AnswersHeldUntil = answers.Task };
        using var interrupt = new CancellationTokenSource();
        var options = Options(users: 10, maxRequests: stoppedBy == StopReasons.RequestBound ? 10 : 1000, durationS: 1, drainS: 5);

        var run = new LoadRunner(target, ThreeImages, options, clock: clock).RunAsync(interrupt.Token);
        await WaitUntilAsync(() => target.Contents.Count == 10);
        if (stoppedBy == StopReasons.Duration) clock.Advance(TimeSpan.FromSeconds(1));
        if (stoppedBy == StopReasons.Interrupted) await interrupt.CancelAsync();
        answers.SetResult();
        var report = LoadReport.From(await run.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal(stoppedBy, report.Run.StoppedBy);
        Assert.Null(report.Run.RefusedEverything);
        Assert.Equal(new Dictionary<string, int> { ["http_401_unauthorized"] = 10 }, report.Counts.FailuresByReason);
        Assert.DoesNotContain("Stopped early", MarkdownReport.Render(report));
    }

    private static ImageSet ManyImages(int count) =>
        new([.. Enumerable.Range(0, count).Select(k => new TestImage($"{k}.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg"))]);

    [Theory]
    [InlineData("http_401_unauthorized")]
    [InlineData("http_401_invalid_api_key")]
    [InlineData("http_403_source_not_allowed")]
    public async Task ClosedLoop_CallerRefusedBeforeAnyAcceptance_StopsAtTheTenthRefusalWhateverTheSetsSize(string reason)
    {
        // A key missing or refused with a folder of 500 images: the every-image rule would have sent each once first.
        var clock = new ManualClock();
        var target = new FakeLoadTarget { SubmitAnswer = TargetResponse.Fail(reason) };

        var report = LoadReport.From(await new LoadRunner(target, ManyImages(500), Options(users: 2, maxRequests: 1000, durationS: 600), clock: clock)
            .RunAsync().WaitAsync(TimeSpan.FromSeconds(30)));

        // The other user's request in flight at the stop may be one more.
        Assert.InRange(report.Counts.Submitted, LoadRunner.MinRefusalsToStop, LoadRunner.MinRefusalsToStop + 1);
        Assert.Equal(StopReasons.Refused, report.Run.StoppedBy);
        Assert.Equal($"the target refused the caller (the API key, its role or its sources) in 10 submissions before accepting any; sending stopped: {reason} ×10", report.Run.RefusedEverything);
        Assert.Equal(TimeSpan.Zero, clock.Now);
    }

    [Fact]
    public async Task ClosedLoop_KeyRevokedMidRun_StopsAtTheTenthRefusalSinceTheLastAcceptance()
    {
        // Twenty accepted and completed, then every submission answered 401 (the key revoked, a redeploy without it): the
        // users sent refusals for the rest of the 600 s.
        var clock = new ManualClock();
        var target = new FakeLoadTarget { RefusesAfterAccepting = 20, RefusalReason = "http_401_invalid_api_key", PollsWait = true, PollsToComplete = 1 };

        var report = LoadReport.From(await new LoadRunner(target, ManyImages(500), Options(users: 1, maxRequests: 1000, durationS: 600), clock: clock)
            .RunAsync().WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal((30, 20, 10), (report.Counts.Submitted, report.Counts.Completed, report.Counts.Failed));
        Assert.Equal(StopReasons.Refused, report.Run.StoppedBy);
        Assert.Equal("the target refused the caller (the API key, its role or its sources) in 10 submissions since it last accepted one (20 accepted before); sending stopped: http_401_invalid_api_key ×10", report.Run.RefusedEverything);
        Assert.Contains("**Stopped early**: the target refused the caller", MarkdownReport.Render(report));
        Assert.Equal(TimeSpan.Zero, clock.Now);
    }

    [Fact]
    public async Task ClosedLoop_CallerRefusalsBetweenAcceptances_RunGoesOnToItsEnd()
    {
        // One image of three answered 403 each time (as a proxy might for one path): twenty refusals in the run, but an
        // acceptance between every two, so the caller is not refused as such.
        var clock = new ManualClock();
        var target = new FakeLoadTarget { Refuses = name => name == "a.jpg", RefusalReason = "http_403_forbidden", PollsWait = true, PollsToComplete = 1 };

        var report = LoadReport.From(await new LoadRunner(target, ThreeImages, Options(users: 1, maxRequests: 60), clock: clock).RunAsync().WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal((60, 40, 20), (report.Counts.Submitted, report.Counts.Completed, report.Counts.Failed));
        Assert.Equal(StopReasons.RequestBound, report.Run.StoppedBy);
        Assert.Null(report.Run.RefusedEverything);
    }

    [Theory]
    [InlineData("http_401_unauthorized", true)]
    [InlineData("http_403_cross_site_request", true)]
    [InlineData("http_403", true)]
    [InlineData("http_400_not_an_image", false)]
    [InlineData("http_404", false)]
    [InlineData("rejected", false)]
    [InlineData(null, false)]
    public void IsCallerRefusal_A401OrA403(string? reason, bool callerRefused) =>
        Assert.Equal(callerRefused, LoadRunner.IsCallerRefusal(reason));

    [Fact]
    public async Task ClosedLoop_OneImageOfThreeAlwaysRefused_RunGoesOnToItsEnd()
    {
        // Scattered refusals (a bad file among good ones) do not stop the run: the first acceptance settles it.
        var clock = new ManualClock();
        var target = new FakeLoadTarget { Refuses = name => name == "a.jpg", PollsWait = true, PollsToComplete = 1 };

        var report = LoadReport.From(await new LoadRunner(target, ThreeImages, Options(users: 2, maxRequests: 60), clock: clock).RunAsync().WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal((60, 40, 20), (report.Counts.Submitted, report.Counts.Completed, report.Counts.Failed));
        Assert.Equal(StopReasons.RequestBound, report.Run.StoppedBy);
        Assert.Null(report.Run.RefusedEverything);
    }

    [Fact]
    public async Task ClosedLoop_TwelveRefusalsBeforeTheFirstAcceptanceButNotEveryImage_RunGoesOn()
    {
        // Twelve bad files and one good one, sent in turn from the first: twelve refusals come before the first acceptance
        // (as with many users, a quick refusal and a slow store). A count alone would have stopped a run that was working.
        var clock = new ManualClock();
        var target = new FakeLoadTarget { Refuses = name => name.StartsWith("bad", StringComparison.Ordinal), PollsWait = true, PollsToComplete = 1 };
        var images = new ImageSet([.. Enumerable.Range(0, 12).Select(k => new TestImage($"bad{k}.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg")),
            new TestImage("good.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg")]);

        var report = LoadReport.From(await new LoadRunner(target, images, Options(users: 1, maxRequests: 26), clock: clock).RunAsync().WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal((26, 2, 24), (report.Counts.Submitted, report.Counts.Completed, report.Counts.Failed));
        Assert.Equal(StopReasons.RequestBound, report.Run.StoppedBy);
    }

    [Fact]
    public async Task OpenLoop_EveryImageRefused_StopsSendingAtTheTenthRefusal()
    {
        // 8 images/s, each refused: the tenth is due at 1.25 s, and nothing is sent after it, though 30 s were asked.
        var clock = new ManualClock();
        var target = new FakeLoadTarget { SubmitAnswer = TargetResponse.Fail("http_415_unsupported_media_type") };
        var runner = new LoadRunner(target, ThreeImages, Options(rate: 8, durationS: 30, drainS: 30), clock: clock);
        var run = runner.RunAsync();

        // Time moves an eighth of a second at a time, once the arrivals due by then were sent, their refusals handled (the loop
        // may wait for the next arrival before a refusal is counted: CI once moved time past the tenth's) and the loop waits again.
        for (var k = 1; k <= 40 && !run.IsCompleted; k++)
        {
            await WaitUntilAsync(() => run.IsCompleted
                || (target.Contents.Count == k - 1 && runner.InFlight == 0 && clock.PendingWithin(TimeSpan.FromMilliseconds(5)) == 1));
            if (!run.IsCompleted) clock.Advance(TimeSpan.FromSeconds(0.125));
        }
        var result = await run.WaitAsync(TimeSpan.FromSeconds(30));
        var report = LoadReport.From(result);

        Assert.Equal(TimeSpan.FromSeconds(1.25), result.Elapsed);
        Assert.Equal((10, 10, 0), (report.Counts.Submitted, report.Counts.Failed, report.Counts.ArrivalsNotSent));
        Assert.Equal(StopReasons.Refused, report.Run.StoppedBy);
        Assert.Equal(1.25, report.Run.SendingStoppedS);
    }

    [Theory]
    [InlineData("http_400_not_an_image", true)]
    [InlineData("http_401_unauthorized", true)]
    [InlineData("http_413", true)]
    [InlineData("rejected", true)]
    [InlineData("http_408", false)]
    [InlineData("http_500", false)]
    [InlineData("http_4", false)]
    [InlineData("connection_refused", false)]
    [InlineData("invalid_response", false)]
    public void IsRefusal_A4xxButATimeoutOrAnUploadAcceptingNothing(string reason, bool refusal) =>
        Assert.Equal(refusal, LoadRunner.IsRefusal(reason));

    [Fact]
    public async Task ClosedLoop_ScatteredFailures_DoNotSlowTheUsers()
    {
        // Every third submission fails (a 500); the others complete on a first poll the server held. A user that paused after
        // each failure sent less than the load asked for; here time never moves, so it would never send again.
        var clock = new ManualClock();
        var target = new FakeLoadTarget { FailEvery = 3, PollsWait = true, PollsToComplete = 1 };

        var report = LoadReport.From(await new LoadRunner(target, Images, Options(users: 2, maxRequests: 30), clock: clock).RunAsync().WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal((30, 20, 10), (report.Counts.Submitted, report.Counts.Completed, report.Counts.Failed));
        Assert.Equal(new Dictionary<string, int> { ["boom"] = 10 }, report.Counts.FailuresByReason);
        Assert.Equal(TimeSpan.Zero, clock.Now);
    }

    [Fact]
    public async Task ClosedLoop_ThrottledWithRetryAfter_UserWaitsItOut()
    {
        // Each submission is answered 429 with Retry-After: 2 once, then accepted (and completed on its first poll).
        var clock = new ManualClock();
        var target = new FakeLoadTarget { ThrottleEvery = 1, ThrottleRetryAfter = TimeSpan.FromSeconds(2), PollsWait = true, PollsToComplete = 1 };
        var run = new LoadRunner(target, Images, Options(users: 1, maxRequests: 2), clock: clock).RunAsync();

        // Throttled at 0: it waits (as the duration's end and the drain's do), not sending again until 2 s.
        await WaitUntilAsync(() => target.Contents.Count == 1 && clock.Pending().Count == 3);
        Assert.Equal(TimeSpan.FromSeconds(2), clock.Pending()[0]);
        clock.Advance(TimeSpan.FromSeconds(1.999));
        Assert.Single(target.Contents);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        // Accepted at 2 s and completed; the next one throttled at once, retried at 4 s.
        await WaitUntilAsync(() => target.Contents.Count == 3 && clock.Pending().Count == 3);
        Assert.Equal(TimeSpan.FromSeconds(4), clock.Pending()[0]);
        clock.Advance(TimeSpan.FromSeconds(2));
        var result = await run.WaitAsync(TimeSpan.FromSeconds(30));
        var report = LoadReport.From(result);

        Assert.Equal((2, 2, 2), (report.Counts.Submitted, report.Counts.Completed, report.Counts.Throttled));
        Assert.Equal([2.0, 4.0], result.Records.Select(r => r.AcceptedS!.Value).Order());
        Assert.Empty(report.Counts.FailuresByReason);
    }

    [Theory]
    [InlineData(null, 1000)]
    [InlineData(5.0, 100)]
    [InlineData(30_000.0, 30_000)]
    [InlineData(1e12, 90_000)]
    public void RetryDelay_RetryAfterHonouredUpToTheRunsLength(double? retryAfterMs, double expectedMs) =>
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs), LoadRunner.RetryDelay(retryAfterMs is { } ms ? TimeSpan.FromMilliseconds(ms) : null, TimeSpan.FromSeconds(90)));

    [Fact]
    public async Task Run_TargetThrows_ThatRequestFailsAndTheRunGoesOn()
    {
        var report = LoadReport.From(await new LoadRunner(new FakeLoadTarget { ThrowEvery = 4 }, Images, Options(users: 2, maxRequests: 12)).RunAsync());

        Assert.Equal(12, report.Counts.Submitted);
        Assert.Equal(9, report.Counts.Completed);
        Assert.Equal(new Dictionary<string, int> { ["exception_InvalidOperationException"] = 3 }, report.Counts.FailuresByReason);
    }

    [Fact]
    public async Task Run_Cancelled_EndsEarlyAndReportsWhatItMeasured()
    {
        using var interrupt = new CancellationTokenSource();
        var target = new FakeLoadTarget { NeverFinishes = true };
        // Time never moves: only the interrupt can end the run before its 600 s duration and 600 s drain.
        var clock = new ManualClock();

        var run = new LoadRunner(target, Images, Options(users: 3, durationS: 600, drainS: 600), clock: clock).RunAsync(interrupt.Token);
        // Interrupted once each user's submission is in, not at a fixed time: a loaded machine started the users late.
        await WaitUntilAsync(() => target.Contents.Count == 3);
        await interrupt.CancelAsync();
        var report = LoadReport.From(await run.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal(TimeSpan.Zero, clock.Now);
        Assert.True(report.Run.Interrupted);
        Assert.Equal(3, report.Counts.Submitted);
        // Open at the interrupt, not failed: the server may still complete them.
        Assert.Equal((3, 0, 0), (report.Counts.OutstandingAtInterrupt, report.Counts.Failed, report.Counts.Unfinished));
        Assert.Empty(report.Counts.FailuresByReason);
        Assert.Equal(0, report.Counts.FailurePercent);
        Assert.Equal(StopReasons.Interrupted, report.Run.StoppedBy);
        var markdown = MarkdownReport.Render(report);
        Assert.Contains("**interrupted**", markdown);
        Assert.Contains("Outstanding when interrupted: 3", markdown);
        Assert.Contains("| 3 | 0 | 0 | 0 % |", markdown);
        Assert.Contains("\"outstanding_at_interrupt\": 3", System.Text.Json.JsonSerializer.Serialize(report, ReportFiles.Json));
    }

    [Fact]
    public async Task Run_SignalOnceItsRequestsHaveEnded_ReportedComplete()
    {
        // The signal comes after the last request ended, while the run puts its result together (here, at its last progress
        // line): it was reported interrupted, and the command exited 130/143 for a run that was complete.
        using var interrupt = new CancellationTokenSource();
        var clock = new ManualClock();
        var target = new FakeLoadTarget { PollsWait = true, PollsToComplete = 1 };

        var result = await new LoadRunner(target, Images, Options(users: 2, maxRequests: 6), _ => interrupt.Cancel(), clock)
            .RunAsync(interrupt.Token).WaitAsync(TimeSpan.FromSeconds(30));
        var report = LoadReport.From(result);

        Assert.True(interrupt.IsCancellationRequested);
        Assert.False(result.Interrupted);
        Assert.Equal(StopReasons.RequestBound, report.Run.StoppedBy);
        Assert.Equal((6, 6, 0), (report.Counts.Submitted, report.Counts.Completed, report.Counts.OutstandingAtInterrupt));
        Assert.DoesNotContain("interrupted", MarkdownReport.Render(report));
    }

    [Fact]
    public async Task ClosedLoop_InterruptedWhileWaitingOutAThrottle_ThrottledAtEndNotOutstanding()
    {
        // Every submission answered 429 with Retry-After: 60, Ctrl+C during the wait: nothing was accepted, nothing is open.
        using var interrupt = new CancellationTokenSource();
        var target = new FakeLoadTarget { AlwaysThrottles = TimeSpan.FromMinutes(1) };

        var run = new LoadRunner(target, Images, Options(users: 3, durationS: 600, drainS: 600)).RunAsync(interrupt.Token);
        // Once each user has been throttled, however late a loaded machine started them.
        await WaitUntilAsync(() => target.Contents.Count == 3);
        await interrupt.CancelAsync();
        var report = LoadReport.From(await run);

        Assert.Equal((0, 0, 0, 0), (report.Counts.Submitted, report.Counts.Accepted, report.Counts.OutstandingAtInterrupt, report.Counts.Failed));
        Assert.Equal(3, report.Counts.ThrottledAtEnd);
        Assert.Contains("**No submission was accepted**", MarkdownReport.Render(report));
    }

    [Fact]
    public void HtmlReport_InterruptedRun_BoldNotAsterisks()
    {
        var report = LoadReport.From(new LoadRunResult(Options(users: 1), "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(1), [Completed(0.5)], Interrupted: true));

        var html = HtmlReport.Render(report);

        Assert.Contains("<strong>interrupted</strong>", html);
        Assert.DoesNotContain("**", html);
    }

    [Fact]
    public void Markdown_QueueMode_NotesSayWhatQueueModeMeasured()
    {
        var options = Options(users: 1) with { Target = null, Queue = true };
        var report = LoadReport.From(new LoadRunResult(options, "RabbitMQ at localhost:5672, virtual host '/', queue classify-image", DateTimeOffset.UnixEpoch,
            TimeSpan.FromSeconds(1), [Completed(0.5)]));

        var markdown = MarkdownReport.Render(report);

        // It described HTTP mode: uploads accepted, throttled answers retried.
        Assert.Contains("queue mode against RabbitMQ at localhost:5672, virtual host '/', queue classify-image", markdown);
        Assert.Contains("queued row recorded and message sent → result written", markdown);
        Assert.DoesNotContain("upload accepted", markdown);
        Assert.DoesNotContain("throttled answers retried", markdown);
    }

    [Fact]
    public void Report_TwoWorkers_CompletionsAndMeanBatchSizePerWorker()
    {
        // Three results from worker a (batches of 4, 4 and 7), two from b (2 and 3), one failed one from b (not completed).
        (string Worker, int Batch, RequestOutcome Outcome)[] rows = [("a", 4, RequestOutcome.Completed), ("a", 4, RequestOutcome.Completed), ("b", 2, RequestOutcome.Completed),
            ("a", 7, RequestOutcome.Completed), ("b", 3, RequestOutcome.Completed), ("b", 9, RequestOutcome.Failed)];
        var records = rows.Select((r, k) => Completed(0.5 + 0.1 * k)).ToList();
        for (var k = 0; k < rows.Length; k++)
        {
            records[k].Server = new ServerTimings(1, 1, 50, rows[k].Batch, rows[k].Worker);
            records[k].Outcome = rows[k].Outcome;
        }

        var report = LoadReport.From(new LoadRunResult(Options(users: 2), "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(2), records));

        Assert.Equal(new[] { new WorkerFigures("a", 3, 5), new WorkerFigures("b", 2, 2.5) }, report.Workers!);
        Assert.Contains("| a | 3 | 5 |", MarkdownReport.Render(report));
        Assert.Contains("<td>b</td><td>2</td><td>2.5</td>", HtmlReport.Render(report));
        Assert.Contains("\"worker_id\": \"b\"", System.Text.Json.JsonSerializer.Serialize(report, ReportFiles.Json));
    }

    [Fact]
    public void Markdown_CleanupFollows_SaysTheCleanupCameAfterTheReport()
    {
        var report = LoadReport.From(new LoadRunResult(Options(users: 1), "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(1), [Completed(0.5)]));

        Assert.DoesNotContain("--cleanup was to remove the run", MarkdownReport.Render(report));
        // Written before any cleanup ran: it says what was meant, not that the run was removed.
        var markdown = MarkdownReport.Render(report with { Run = report.Run with { CleanupFollows = true } });
        Assert.Contains("--cleanup was to remove the run after this report was written; the command's log says what it removed", markdown);
        Assert.DoesNotContain("removed the run", markdown);
        Assert.Contains("\"cleanup_follows\": true", System.Text.Json.JsonSerializer.Serialize(report with { Run = report.Run with { CleanupFollows = true } }, ReportFiles.Json));
    }

    [Fact]
    public void Throughput_SendingStoppedWithinTheRamp_NoSteadyFigureAndWhy()
    {
        // --rate 10 --ramp 10 --duration 30 --max-requests 50: the request bound ended the run at 10.07 s, within the
        // ramp; it reported "steady 7.59/s" for a load it never reached.
        var records = Enumerable.Range(1, 50).Select(k => Completed(Math.Sqrt(2 * k) * 10.07 / 10)).ToList();
        var options = Options(rate: 10, maxRequests: 50) with { Ramp = TimeSpan.FromSeconds(10) };

        var report = LoadReport.From(new LoadRunResult(options, "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(10.2), records));

        Assert.Null(report.Throughput.SteadyCompletedPerS);
        Assert.Contains("within the 10 s ramp", report.Throughput.SteadyNotMeasured);
        Assert.Equal(StopReasons.RequestBound, report.Run.StoppedBy);
        var markdown = MarkdownReport.Render(report);
        Assert.Contains("steady n/a (sending stopped (request bound)", markdown);
        Assert.Contains("the request bound (--max-requests) was reached", markdown);
        Assert.Contains("\"steady_completed_per_s\": null", System.Text.Json.JsonSerializer.Serialize(report, ReportFiles.Json));
    }

    [Fact]
    public async Task OpenLoop_RequestBoundDueAtTheRampsEnd_NoSteadyFigureAndWhy()
    {
        // 100/s ramped over 1 s: the 50th arrival is due exactly at its end (100 t² / 2 = 50 at t = 1), so the request bound
        // stopped sending one loop wake-up later; the steady figure was computed over those few milliseconds.
        // On the run's own clock, the loop waking every 7 ms: at 1.001 s. (A loaded machine woke it a second late, and the
        // window was long enough for a figure.)
        var clock = new ManualClock();
        var target = new FakeLoadTarget { PollsWait = true, PollsToComplete = 1 };
        var options = Options(rate: 100, maxRequests: 50, durationS: 30) with { Ramp = TimeSpan.FromSeconds(1) };
        var run = new LoadRunner(target, Images, options, clock: clock).RunAsync();

        await OpenLoopUntilAsync(clock, target, run, options, TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(7));
        var report = LoadReport.From(await run.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal(StopReasons.RequestBound, report.Run.StoppedBy);
        Assert.Equal(1.001, report.Run.SendingStoppedS);
        Assert.Equal(50, report.Counts.Completed);
        Assert.Null(report.Throughput.SteadyCompletedPerS);
        Assert.Contains("too short to measure a steady rate", report.Throughput.SteadyNotMeasured);
    }

    [Fact]
    public async Task OpenLoop_InterruptedShortlyAfterTheRamp_NoSteadyFigureAndWhy()
    {
        // Ctrl+C 0.3 s after the ramp, by the run's own clock: timed by the machine's, a loaded machine came late.
        using var interrupt = new CancellationTokenSource();
        var clock = new ManualClock();
        var target = new FakeLoadTarget { PollsWait = true, PollsToComplete = 1 };
        var options = Options(rate: 100, durationS: 30) with { Ramp = TimeSpan.FromSeconds(1) };
        var run = new LoadRunner(target, Images, options, clock: clock).RunAsync(interrupt.Token);

        await OpenLoopUntilAsync(clock, target, run, options, TimeSpan.FromSeconds(1.3));
        await interrupt.CancelAsync();
        var report = LoadReport.From(await run.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal(StopReasons.Interrupted, report.Run.StoppedBy);
        Assert.Equal(1.3, report.Run.SendingStoppedS);
        // 100/s ramped over 1 s, then 0.3 s at 100/s: 50 + 30 arrivals, each completed by the interrupt.
        Assert.Equal((80, 80), (report.Counts.Submitted, report.Counts.Completed));
        Assert.Null(report.Throughput.SteadyCompletedPerS);
        Assert.Contains("too short to measure a steady rate", report.Throughput.SteadyNotMeasured);
        Assert.Contains("steady n/a (sending stopped (interrupted)", MarkdownReport.Render(report));
    }

    [Theory]
    [InlineData(2f, 1f)]
    [InlineData(2.3f, 1.3f)]
    [InlineData(10.3f, 9.3f)]
    public void Throughput_WindowOfOneSecondAfterTheRamp_SteadyFigureGiven(float durationS, float rampS)
    {
        // --duration 2 --ramp 1 (the options' seconds are floats, as the command parses them): the window after the ramp is
        // the shortest measured, 1 s. The run's own clock read a hair short of the duration when sending stopped.
        var options = Options(rate: 20) with { Duration = TimeSpan.FromSeconds(durationS), Ramp = TimeSpan.FromSeconds(rampS) };
        var records = Enumerable.Range(1, (int)Math.Round(20 * durationS)).Select(k => Completed(0.05 * k - 0.01)).ToList();

        var report = LoadReport.From(new LoadRunResult(options, "fake", DateTimeOffset.UnixEpoch, options.Duration - TimeSpan.FromTicks(1), records));

        Assert.Null(report.Throughput.SteadyNotMeasured);
        Assert.Equal(20.0, report.Throughput.SteadyCompletedPerS!.Value, 1);
        Assert.Equal(StopReasons.Duration, report.Run.StoppedBy);
    }

    [Fact]
    public void Throughput_DurationUnderASecondAfterTheRamp_NoSteadyFigureAndWhatWouldGiveOne()
    {
        var options = Options(rate: 20) with { Duration = TimeSpan.FromSeconds(1.5), Ramp = TimeSpan.FromSeconds(1) };
        var records = Enumerable.Range(1, 20).Select(k => Completed(0.05 + 0.05 * k)).ToList();

        var report = LoadReport.From(new LoadRunResult(options, "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(1.6), records));

        Assert.Null(report.Throughput.SteadyCompletedPerS);
        Assert.Equal("sending stopped (duration) at 1.5 s, 0.5 s after the 1 s ramp: too short to measure a steady rate (at least 1 s; give --duration 2 or more for one)",
            report.Throughput.SteadyNotMeasured);
        Assert.Contains("give --duration 2 or more for one", MarkdownReport.Render(report));
    }

    [Fact]
    public async Task ClosedLoop_RequestBound_StopsLongBeforeDuration()
    {
        // Time never moves (each request completes on a first held poll): only the request bound can end the run.
        var clock = new ManualClock();
        var target = new FakeLoadTarget { PollsWait = true, PollsToComplete = 1 };

        var result = await new LoadRunner(target, Images, Options(users: 3, maxRequests: 9, durationS: 600), clock: clock).RunAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(TimeSpan.Zero, result.Elapsed);
        Assert.Equal(9, result.Records.Count);
    }

    [Fact]
    public void Timeline_LastSecondCutShort_ItsRateIsOverItsOwnLength()
    {
        // Completions at 0.5, 1.5 and 1.6 s, and two in the last 0.25 s (2.1 and 2.25 s); one at 3.1 s, 0.1 s into its second.
        double[] finished = [0.5, 1.5, 1.6, 2.1, 2.25];
        var records = finished.Select(f => Completed(f)).ToList();
        var options = Options(users: 1);
        var timeline = LoadReport.From(new LoadRunResult(options, "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(2.25), records)).Timeline;

        Assert.Equal([1, 1, 0.25], timeline.Select(p => p.DurationS));
        Assert.Equal([1, 2, 2], timeline.Select(p => p.Completed));
        Assert.Equal([1.0, 2.0, 8.0], timeline.Select(p => p.Rate(p.Completed)));

        records.Add(Completed(3.1));
        var last = LoadReport.From(new LoadRunResult(options, "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(3.1), records)).Timeline[^1];
        Assert.Equal(0.1, last.DurationS, 3);
        Assert.Null(last.Rate(last.Completed));
    }

    [Fact]
    public void Throughput_RunEndedByItsRequestBound_RatesOverTheTimeItRan()
    {
        // Five images accepted by 2.15 s and completed by 2.25 s, in a run that was allowed 30 s.
        var records = new[] { 0.5, 1.5, 1.6, 2.1, 2.25 }.Select(Completed).ToList();

        var throughput = LoadReport.From(new LoadRunResult(Options(users: 1, maxRequests: 5), "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(2.25), records)).Throughput;

        Assert.Equal(Math.Round(5 / 2.15, 3), throughput.AcceptedPerS);
        Assert.Equal(Math.Round(5 / 2.25, 3), throughput.CompletedPerS);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Throughput_RunEndedAt10sOf30_SteadyIsTheRateWhileItSent(bool interrupted)
    {
        // Four users at 40 images/s (one every 25 ms, 100 ms each) until the request bound, or Ctrl+C, ended the run at
        // 10 s of 30, after a 3 s ramp: the window 3-30 s, 20 s of it after the end, read about 10/s.
        var records = Enumerable.Range(0, 400).Select(k => Completed(0.1 + 0.025 * k)).ToList();
        var options = Options(users: 4, maxRequests: interrupted ? 100_000 : 400) with { Ramp = TimeSpan.FromSeconds(3) };

        var report = LoadReport.From(new LoadRunResult(options, "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(10.1), records, Interrupted: interrupted));

        Assert.Equal(40.0, report.Throughput.SteadyCompletedPerS!.Value, 1);
    }

    [Fact]
    public void Throughput_NoRampFirstCompletionOneLatencyAfterTheStart_SteadyKeepsTheSlope()
    {
        // 192 users started at once (bench/ab.sh's closed loop), served 16 at a time every 0.4 s (40/s): each round trip
        // takes 4.8 s, so the first batch comes 4.8 s into a window that starts at 0; each user sends again at once.
        var records = Enumerable.Range(0, 80).SelectMany(j => Enumerable.Range(0, 16).Select(_ =>
        {
            var finished = 4.8 + 0.4 * j;
            var started = j < 12 ? 0 : finished - 4.8;
            return new RequestRecord
            {
                StartedS = started,
                AcceptedS = started + 0.01,
                FinishedS = finished,
                ClientMs = (finished - started) * 1000,
                Outcome = RequestOutcome.Completed,
                Server = new ServerTimings(1, 1, 50, 16),
            };
        })).ToList();

        var report = LoadReport.From(new LoadRunResult(Options(users: 192), "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(36.5), records));

        Assert.Equal(40.0, report.Throughput.SteadyCompletedPerS!.Value, 1);
    }

    [Fact]
    public void Throughput_OpenLoopStallsAfter10Of30s_CompletedPerSIsOverTheDuration()
    {
        // 20 images/s completed for 10 s, then nothing until the 30 s duration and its drain were over.
        var records = Enumerable.Range(0, 200).Select(k => Completed(0.05 + 0.05 * k)).ToList();

        var report = LoadReport.From(new LoadRunResult(Options(rate: 20), "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(60), records));

        Assert.Equal(Math.Round(200 / 30.0, 3), report.Throughput.CompletedPerS);
        Assert.Equal(Math.Round(200 / 30.0, 3), report.Throughput.SteadyCompletedPerS);
    }

    /// <summary>Polls by the clock, with room for a loaded machine that is slow to start the run's users.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition() && deadline.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(1);
        Assert.True(condition());
    }

    /// <summary>Runs what <paramref name="context"/> is posted until <paramref name="run"/> ends; its result.</summary>
    private static async Task<LoadRunResult> RunOnAsync(ManualContext context, Task<LoadRunResult> run)
    {
        while (!run.IsCompleted)
        {
            await WaitUntilAsync(() => run.IsCompleted || context.Posted > 0);
            context.RunPosted();
        }
        return await run;
    }

    /// <summary>
    /// Moves an open loop's clock on by <paramref name="step"/> (10 ms) until <paramref name="until"/> or the run's end;
    /// before each step, waits until the run did all it could by then: every arrival due sent and answered (the target
    /// completes on a first held poll, needing no time), and the loop waiting for its next wake-up (5 ms).
    /// </summary>
    private static async Task OpenLoopUntilAsync(ManualClock clock, FakeLoadTarget target, Task<LoadRunResult> run, LoadTestOptions options, TimeSpan until, TimeSpan? step = null)
    {
        bool Settled()
        {
            var due = (int)Math.Min(options.MaxRequests, LoadRunner.Arrivals(clock.Now.TotalSeconds, options.Rate, options.Ramp.TotalSeconds));
            return target.Contents.Count == due && target.Completions == due && clock.PendingWithin(TimeSpan.FromMilliseconds(5)) == 1;
        }
        while (true)
        {
            await WaitUntilAsync(() => run.IsCompleted || Settled());
            if (run.IsCompleted || clock.Now >= until) return;
            clock.Advance(step ?? TimeSpan.FromMilliseconds(10));
        }
    }

    private static RequestRecord Completed(double finishedS) => new()
    {
        StartedS = finishedS - 0.1,
        AcceptedS = finishedS - 0.1,
        FinishedS = finishedS,
        Outcome = RequestOutcome.Completed,
        Server = new ServerTimings(1, 1, 50, 1),
    };

    [Fact]
    public async Task ClosedLoop_Ramp_UsersStartEvenlyOverIt()
    {
        // Four users over a 4 s ramp start at 0, 1, 2 and 3 s; launching stops at 1.5 s, so the last two never start.
        var clock = new ManualClock();
        var target = new FakeLoadTarget();
        var options = Options(users: 4, durationS: 1.5, drainS: 5) with { Ramp = TimeSpan.FromSeconds(4) };
        var run = new LoadRunner(target, Images, options, clock: clock).RunAsync();

        // Time moves to the next timer once the run did all it could by then: each request in flight waits for its next
        // poll, beside the drain's end. Until the duration's end, which is a timer too, each user due by then has one
        // request in flight and each other one waits for its turn (the first starts at once, without one).
        bool Settled()
        {
            var inFlight = target.Contents.Count - target.Completions;
            if (clock.Now >= options.Duration) return clock.Pending().Count == 1 + inFlight;
            var started = Enumerable.Range(0, 4).Count(user => TimeSpan.FromSeconds(user) <= clock.Now);
            return inFlight == started && clock.Pending().Count == 2 + inFlight + (4 - started);
        }
        while (true)
        {
            await WaitUntilAsync(() => run.IsCompleted || Settled());
            if (run.IsCompleted) break;
            clock.Advance(clock.Pending()[0] - clock.Now);
        }
        var records = (await run).Records;

        // Each user's requests follow one another, so the requests in flight at a moment are the users started by then.
        int InFlightAt(double t) => records.Count(r => r.StartedS <= t && t < r.FinishedS);
        Assert.All(records, r => Assert.Equal(RequestOutcome.Completed, r.Outcome));
        Assert.Equal(0, records.Min(r => r.StartedS));
        Assert.All(records.Where(r => r.StartedS < 1), r => Assert.Equal(1, InFlightAt(r.StartedS)));
        // The second user's first request at 1 s exactly; from then on two users, and none sends from 1.5 s.
        Assert.Contains(records, r => r.StartedS == 1);
        Assert.All(records.Where(r => r.StartedS >= 1), r => Assert.Equal(2, InFlightAt(r.StartedS)));
        Assert.All(records, r => Assert.True(r.StartedS < 1.5, $"started at {r.StartedS} s"));
    }

    [Fact]
    public async Task HttpMode_ByDefault_EveryUploadIsNewContent()
    {
        var target = new FakeLoadTarget();

        await new LoadRunner(target, Images, Options(users: 2, maxRequests: 10)).RunAsync();

        Assert.Equal(10, target.Contents.Count);
        Assert.Equal(10, target.Contents.Select(Convert.ToHexString).Distinct().Count());
    }

    [Fact]
    public async Task HttpMode_RepeatImages_SendsTheBytesUnchanged()
    {
        var target = new FakeLoadTarget();

        await new LoadRunner(target, Images, Options(users: 2, maxRequests: 10) with { UniqueUploads = false }).RunAsync();

        Assert.All(target.Contents, content => Assert.Equal(Images.All[0].Content, content));
    }

    [Fact]
    public async Task QueueMode_EachImageNewContentOncePerRun()
    {
        // Stored once and shared by content hash, an image was another run's row too, and that run's cleanup deleted it
        // under this one.
        var (first, second) = (new FakeLoadTarget(), new FakeLoadTarget());
        var options = Options(users: 2, maxRequests: 10) with { Target = null, Queue = true };

        await new LoadRunner(first, Images, options).RunAsync();
        await new LoadRunner(second, Images, options).RunAsync();

        var (ours, theirs) = (first.Prepared!.All.Single().Content, second.Prepared!.All.Single().Content);
        Assert.NotEqual(Images.All[0].Content, ours);
        Assert.NotEqual(ours, theirs);
        Assert.Equal(10, first.Contents.Count);
        Assert.All(first.Contents, content => Assert.Same(ours, content));
    }

    [Fact]
    public async Task QueueMode_RepeatImages_StoresTheBytesUnchanged()
    {
        var target = new FakeLoadTarget();

        await new LoadRunner(target, Images, Options(users: 2, maxRequests: 10) with { Target = null, Queue = true, UniqueUploads = false }).RunAsync();

        Assert.Same(Images, target.Prepared);
        Assert.All(target.Contents, content => Assert.Equal(Images.All[0].Content, content));
    }

    [Fact]
    public async Task HttpMode_ImageThatCannotBeStamped_RefusedBeforeAnythingIsSent()
    {
        var target = new FakeLoadTarget();
        var images = new ImageSet([new TestImage("a.gif", [0x47, 0x49, 0x46, 0x38, 0x39], "image/gif")]);

        var error = await Assert.ThrowsAsync<ArgumentException>(() => new LoadRunner(target, images, Options(users: 1, maxRequests: 1)).RunAsync());

        Assert.Contains("a.gif", error.Message);
        Assert.Empty(target.Contents);
    }

    [Fact]
    public async Task Run_DurationBeyondTheLongestSpan_RefusedBeforeAnythingIsSent()
    {
        var target = new FakeLoadTarget();

        // 60 days: beyond what the run's timers take (49 days), which threw from inside the run.
        var error = await Assert.ThrowsAsync<ArgumentException>(() => new LoadRunner(target, Images, Options(users: 1, durationS: 60 * 86400)).RunAsync());

        Assert.Contains("at most 604800 s", error.Message);
        Assert.Empty(target.Contents);
    }

    [Theory]
    [InlineData(1.0, 10, 0, 10)]
    [InlineData(1.0, 10, 2, 2.5)]
    [InlineData(4.0, 10, 2, 30)]
    public void Arrivals_RampedRate_IntegratesTheRate(double t, double rate, double ramp, double expected) =>
        Assert.Equal(expected, LoadRunner.Arrivals(t, rate, ramp), 6);
}
