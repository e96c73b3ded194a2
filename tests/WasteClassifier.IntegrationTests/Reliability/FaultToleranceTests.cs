using WasteClassifier.IntegrationTests.Fixtures;
using Xunit.Abstractions;

namespace WasteClassifier.IntegrationTests.Reliability;

/// <summary>These stop shared servers, so nothing else runs beside them; every server is started again in a finally block.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FaultCollection
{
    public const string Name = "faults";
}

/// <summary>
/// A stream of real submissions through a fault; afterwards every accepted id must be completed or failed with a
/// reason, none lost. Figures go to the test output and to $TMPDIR/wasteclassifier-faults.md.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class FaultToleranceTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan Stream = TimeSpan.FromSeconds(24);
    private static readonly TimeSpan Every = TimeSpan.FromMilliseconds(250);

    [IntegrationFact]
    public async Task KillOneOfTwoWorkers_MidBatch_NothingLost()
    {
        await using var harness = await FaultHarness.StartAsync(workers: 2);
        var report = await harness.RunAsync("kill -9 one of two workers", Stream, TimeSpan.FromMilliseconds(100), () =>
        {
            harness.Workers[0].KillHard();
            return Task.CompletedTask;
        });
        Check(report);
    }

    [IntegrationFact]
    public async Task RabbitMqStopped15s_DuringSubmissions_NothingLost()
    {
        await using var harness = await FaultHarness.StartAsync(workers: 1);
        var report = await harness.RunAsync("RabbitMQ stopped 15 s", Stream, Every, async () =>
        {
            try
            {
                await ServerControl.StopRabbitMqAsync();
                await Task.Delay(Outage);
            }
            finally
            {
                await ServerControl.StartRabbitMqAsync();
            }
        });
        Check(report);
    }

    [IntegrationFact]
    public async Task PostgresStopped15s_WhileWorkersWrite_NothingLost()
    {
        await using var harness = await FaultHarness.StartAsync(workers: 1);
        var report = await harness.RunAsync("PostgreSQL stopped 15 s", Stream, Every, async () =>
        {
            try
            {
                await ServerControl.StopPostgresAsync();
                await Task.Delay(Outage);
            }
            finally
            {
                await ServerControl.StartPostgresAsync();
            }
        });
        Check(report);
    }

    [IntegrationFact]
    public async Task S3Stopped15s_NothingLost()
    {
        await using var harness = await FaultHarness.StartAsync(workers: 1);
        var report = await harness.RunAsync("S3 server stopped 15 s", Stream, Every, async () =>
        {
            string[]? commandLine = null;
            try
            {
                commandLine = await ServerControl.StopS3Async();
                await Task.Delay(Outage);
            }
            finally
            {
                if (commandLine is not null) await ServerControl.StartS3Async(commandLine);
            }
        });
        Check(report);
    }

    [IntegrationFact]
    public async Task ApiRestarted_DuringSubmissions_No202Lost()
    {
        await using var harness = await FaultHarness.StartAsync(workers: 1);
        var current = harness.Api;
        var report = await harness.RunAsync("API restarted", Stream, Every, async () =>
        {
            var old = current;
            var replacement = new ApiFactory(harness.Settings);
            // Requests in flight on the old process see it go away: a refusal or an error, never a 202 without a row.
            await old.DisposeAsync();
            replacement.CreateClient();
            current = replacement;
            harness.Api = replacement;
        }, client: () => current.CreateClient());
        Check(report);
    }

    [IntegrationFact]
    public async Task Worker_Sigterm_StopsWithinTimeoutAndItsBatchIsFinished()
    {
        await using var harness = await FaultHarness.StartAsync(workers: 2);
        TimeSpan exit = default;
        var report = await harness.RunAsync("SIGTERM one of two workers", TimeSpan.FromSeconds(12), TimeSpan.FromMilliseconds(100), async () =>
        {
            exit = await harness.Workers[0].TerminateAsync(TimeSpan.FromSeconds(20));
        });
        output.WriteLine($"worker exited {exit.TotalSeconds:F1} s after SIGTERM (Worker:ShutdownTimeoutSeconds = 15)");
        Assert.True(harness.Workers[0].HasExited);
        Assert.True(exit < TimeSpan.FromSeconds(17), $"exit took {exit}");
        Check(report);
    }

    private void Check(FaultHarness.Report report)
    {
        output.WriteLine("| Fault | Submissions | Accepted | Refused | Completed | Failed (by reason) | Lost | First result after recovery | All final after recovery |");
        output.WriteLine(report.Row());
        File.AppendAllText(Path.Combine(Path.GetTempPath(), "wasteclassifier-faults.md"), report.Row() + Environment.NewLine);
        Assert.True(report.Accepted > 0, "nothing was accepted");
        Assert.Equal(0, report.Lost);
        Assert.Equal(0, report.Duplicates);
        Assert.Equal(report.Accepted, report.Completed + report.FailedByReason.Values.Sum());
    }
}
