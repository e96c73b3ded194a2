using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using WasteClassifier.Infrastructure.Hosting;

namespace WasteClassifier.UnitTests.Infrastructure;

/// <summary>The probes and GET /health describe the broker in fixed words: MassTransit's own text goes only to the log.</summary>
public sealed class HealthResponsesTests
{
    [Theory]
    [InlineData(HealthStatus.Healthy, "connected")]
    [InlineData(HealthStatus.Degraded, "connected, a receive endpoint is not ready")]
    [InlineData(HealthStatus.Unhealthy, "not connected")]
    public void View_BrokerCheck_FixedWordsTheOriginalLoggedWhenNotHealthy(HealthStatus status, string words)
    {
        const string original = "Not ready: rabbitmq://guest:secret@broker.internal/ classify-endpoint faulted";
        var report = new HealthReport(new Dictionary<string, HealthReportEntry>
        {
            ["masstransit-bus"] = new(status, original, TimeSpan.FromMilliseconds(2), null, null),
            ["database"] = new(HealthStatus.Healthy, "PostgreSQL", TimeSpan.FromMilliseconds(1), null, null),
        }, TimeSpan.FromMilliseconds(3));
        var logger = new ListLogger();

        var view = HealthResponses.View(report, logger);

        Assert.Equal(words, view.Checks["masstransit-bus"].Description);
        Assert.Equal("PostgreSQL", view.Checks["database"].Description);
        Assert.Equal(status == HealthStatus.Healthy ? 0 : 1, logger.Warnings.Count(w => w.Contains(original, StringComparison.Ordinal)));
    }

    private sealed class ListLogger : ILogger
    {
        public List<string> Warnings { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Warning) Warnings.Add(formatter(state, exception));
        }
    }
}
