using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace WasteClassifier.UnitTests.Support;

/// <summary>MassTransit's test harness with waits a loaded 2-core machine does not cut short.</summary>
internal static class TestHarnesses
{
    /// <summary>
    /// The harness's <c>Any</c> waits give up after <paramref name="inactivity"/> without bus activity (1.2 s by default).
    /// With the integration tests beside them on 2 cores, a fault published and consumed in a few milliseconds alone was
    /// reported as never consumed. A wait for a message that comes returns as soon as it does; only a wait for one that
    /// must not come (a test that asserts none) lasts the whole <paramref name="inactivity"/>.
    /// </summary>
    public static IServiceCollection AddPatientTestHarness(this IServiceCollection services, Action<IBusRegistrationConfigurator>? configure = null,
        TimeSpan? inactivity = null) =>
        services.AddMassTransitTestHarness(configure ?? (_ => { }))
            .Configure<TestHarnessOptions>(options => options.TestInactivityTimeout = inactivity ?? TimeSpan.FromSeconds(10));
}
