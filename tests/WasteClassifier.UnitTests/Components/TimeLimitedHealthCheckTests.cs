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
        var check = new Check(async (_, token) =>
        {
            await Task.Delay(Timeout.Infinite, token);
            return HealthCheckResult.Healthy();
        });
        try
        {
            var result = await Limited(check, "object store").CheckHealthAsync(new HealthCheckContext(), request.Token);

            Assert.Equal(HealthStatus.Unhealthy, result.Status);
            Assert.Equal("the object store did not answer within 0.05 s", result.Description);
            Assert.False(check.Token.IsCancellationRequested);
        }
        finally
        {
            await request.CancelAsync();
        }
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
    public async Task RequestAborted_CancellationPropagates()
    {
        using var aborted = new CancellationTokenSource();
        await aborted.CancelAsync();
        var check = new Check(async (_, token) =>
        {
            await Task.Delay(Timeout.Infinite, token);
            return HealthCheckResult.Healthy();
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Limited(check, "database", new HealthOptions()).CheckHealthAsync(new HealthCheckContext(), aborted.Token));
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

        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            Token = cancellationToken;
            return run(context, cancellationToken);
        }
    }
}
