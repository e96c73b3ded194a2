using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using WasteClassifier.Components.Observability;

namespace WasteClassifier.UnitTests.Components;

/// <summary>
/// A component check that does not answer reports its component unhealthy at its limit, whether it awaits or blocks its
/// thread, and is left to end on its own; one that answers is passed on as it is. Nothing here is timed: the results are asserted.
/// </summary>
public sealed class TimeLimitedHealthCheckTests
{
    private static readonly HealthOptions Short = new() { CheckTimeoutSeconds = 0.05 };

    /// <summary>A limit no call here reaches: the test decides when the check answers.</summary>
    private static readonly HealthOptions Long = new() { CheckTimeoutSeconds = 60 };

    [Fact]
    public async Task Check_IgnoresItsToken_UnhealthyNamingComponentAndLimit()
    {
        var never = new TaskCompletionSource<HealthCheckResult>();

        var result = await Limited(new Check((_, _) => never.Task), "database").CheckHealthAsync(new HealthCheckContext());

        Assert.Equal(HealthStatus.Unhealthy, result.Status);
        Assert.Equal("the database did not answer within 0.05 s", result.Description);
    }

    [Fact]
    public async Task Check_PastTheLimit_NotCancelledOnlyLeftToEnd()
    {
        // Cancelling Npgsql mid-query connects synchronously to send a cancel request: the answer does not wait on that.
        using var request = new CancellationTokenSource();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource<HealthCheckResult>();
        var check = new Check((_, _) =>
        {
            started.TrySetResult();
            return release.Task;
        });
        try
        {
            var result = await Limited(check, "object store").CheckHealthAsync(new HealthCheckContext(), request.Token);
            // The check has started, so its token is the one it got, whatever the machine's load made of the 0.05 s.
            await started.Task;

            Assert.Equal(HealthStatus.Unhealthy, result.Status);
            Assert.Equal("the object store did not answer within 0.05 s", result.Description);
            Assert.False(check.Token.CanBeCanceled);
        }
        finally
        {
            await request.CancelAsync();
            release.SetResult(HealthCheckResult.Healthy());
        }
    }

    [Fact]
    public async Task Check_NotAnswering_RunsOnceForConcurrentAndLaterCallsThenAgainOnceEnded()
    {
        // A silent server held one pooled connection per call: probes and a client polling /health filled the pool.
        var runs = 0;
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource<HealthCheckResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var check = new Check((_, _) =>
        {
            if (Interlocked.Increment(ref runs) > 1) return Task.FromResult(HealthCheckResult.Healthy("run 2"));
            started.TrySetResult();
            return release.Task;
        });
        var options = new HealthOptions { CheckTimeoutSeconds = 0.05 };
        var limited = Limited(check, "database", options);

        var concurrent = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => limited.CheckHealthAsync(new HealthCheckContext())));
        var later = await limited.CheckHealthAsync(new HealthCheckContext());
        await started.Task;

        Assert.All(concurrent.Append(later), result => Assert.Equal("the database did not answer within 0.05 s", result.Description));
        Assert.Equal(1, Volatile.Read(ref runs));

        release.SetResult(HealthCheckResult.Healthy("answered at last"));
        // A limit a loaded machine cannot pass: the calls below wait for the check.
        options.CheckTimeoutSeconds = 60;
        var next = await limited.CheckHealthAsync(new HealthCheckContext());
        // That call may have joined the run just released (still disposing its scope) and waited for its end: the next cannot.
        if (next.Description == "answered at last") next = await limited.CheckHealthAsync(new HealthCheckContext());

        Assert.Equal("run 2", next.Description);
        Assert.Equal(2, Volatile.Read(ref runs));
    }

    [Fact]
    public async Task Check_AnswersWhileAnotherCallWaits_BothGetItsResult()
    {
        var runs = 0;
        var release = new TaskCompletionSource<HealthCheckResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var limited = Limited(new Check((_, _) =>
        {
            Interlocked.Increment(ref runs);
            return release.Task;
        }), "database", Long);

        var first = limited.CheckHealthAsync(new HealthCheckContext());
        var second = limited.CheckHealthAsync(new HealthCheckContext());
        release.SetResult(HealthCheckResult.Degraded("slow"));

        Assert.All(await Task.WhenAll(first, second), result => Assert.Equal("slow", result.Description));
        Assert.Equal(1, Volatile.Read(ref runs));
    }

    [Fact]
    public async Task Check_BlocksItsThread_UnhealthyAtTheLimit()
    {
        // SQLite's "async" calls are synchronous: a check can block before it returns its task.
        using var release = new ManualResetEventSlim();
        try
        {
            var result = await Limited(new Check((_, _) =>
            {
                release.Wait();
                return Task.FromResult(HealthCheckResult.Healthy());
            }), "database").CheckHealthAsync(new HealthCheckContext());

            Assert.Equal("the database did not answer within 0.05 s", result.Description);
        }
        finally
        {
            release.Set();
        }
    }

    [Fact]
    public async Task Check_Answers_ItsResultPassedOn()
    {
        var result = await Limited(new Check((_, _) => Task.FromResult(HealthCheckResult.Degraded("slow"))), "database", new HealthOptions())
            .CheckHealthAsync(new HealthCheckContext());

        Assert.Equal(HealthStatus.Degraded, result.Status);
        Assert.Equal("slow", result.Description);
    }

    [Fact]
    public async Task RequestAborted_OnlyThatWaitEnds_TheCheckRunsOnForTheOthers()
    {
        // One client's abort must not cancel the check another caller waits on (nor send Npgsql's cancel into a silence).
        using var aborted = new CancellationTokenSource();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource<HealthCheckResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var check = new Check((_, _) =>
        {
            started.TrySetResult();
            return release.Task;
        });
        var limited = Limited(check, "database", Long);

        var abandoned = limited.CheckHealthAsync(new HealthCheckContext(), aborted.Token);
        var other = limited.CheckHealthAsync(new HealthCheckContext());
        await started.Task;
        await aborted.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        // The run the aborted call started (the first) got no token it could cancel.
        Assert.True(check.Tokens.TryPeek(out var first) && !first.CanBeCanceled, "the check was given the request's token");
        Assert.False(other.IsCompleted);
        release.SetResult(HealthCheckResult.Healthy("answered"));
        Assert.Equal("answered", (await other).Description);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("60.5")]
    [InlineData("NaN")]
    public void Options_OutOfRange_RefusedNamingTheSetting(string seconds)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Health:CheckTimeoutSeconds"] = seconds }).Build();

        var error = Assert.Throws<InvalidOperationException>(() => HealthOptions.From(configuration));

        Assert.Contains("Health:CheckTimeoutSeconds", error.Message);
    }

    [Fact]
    public void Options_Unset_ThreeSecondsBelowTheProbesFive()
    {
        var options = HealthOptions.From(new ConfigurationBuilder().Build());

        Assert.Equal(TimeSpan.FromSeconds(3), options.CheckTimeout);
    }

    private static TimeLimitedHealthCheck<Check> Limited(Check check, string component, HealthOptions? options = null)
    {
        var services = new ServiceCollection().AddSingleton(check).BuildServiceProvider();
        return new TimeLimitedHealthCheck<Check>(services.GetRequiredService<IServiceScopeFactory>(), options ?? Short, component);
    }

    public sealed class Check(Func<HealthCheckContext, CancellationToken, Task<HealthCheckResult>> run) : IHealthCheck
    {
        public CancellationToken Token { get; private set; }

        /// <summary>Every run's token, in the order the runs started.</summary>
        public System.Collections.Concurrent.ConcurrentQueue<CancellationToken> Tokens { get; } = new();

        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            Token = cancellationToken;
            Tokens.Enqueue(cancellationToken);
            return run(context, cancellationToken);
        }
    }
}
