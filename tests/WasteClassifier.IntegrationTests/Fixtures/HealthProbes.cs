using System.Diagnostics;
using System.Text.Json;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>Helpers for tests that break a server a host depends on and read its health answers.</summary>
internal static class HealthProbes
{
    /// <summary>
    /// Reads <paramref name="path"/> until <c>{section}.{name}.status</c> is healthy, for up to a minute. A single read could
    /// fail on a loaded machine before anything was broken: a host's first check can outlast a short check limit.
    /// </summary>
    public static async Task UntilHealthyAsync(HttpClient http, string path, string section, string name)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var text = await (await http.GetAsync(path)).Content.ReadAsStringAsync();
            using (var json = JsonDocument.Parse(text))
            {
                if (json.RootElement.GetProperty(section).GetProperty(name).GetProperty("status").GetString() == "healthy") return;
            }
            if (waited.Elapsed > TimeSpan.FromMinutes(1)) Assert.Fail($"{path}: {name} not healthy after a minute: {text}");
            await Task.Delay(200);
        }
    }

    /// <summary>
    /// Runs every clean-up step even when one throws (a failed step must not leave a host running or a database behind).
    /// The first failure is thrown only when <paramref name="testPassed"/>: thrown from the finally block of a test that
    /// failed, it would replace that test's own failure in the report.
    /// </summary>
    public static async Task CleanUpAsync(bool testPassed, params Func<Task>[] steps)
    {
        Exception? first = null;
        foreach (var step in steps)
        {
            try { await step(); }
            catch (Exception e) { first ??= e; }
        }
        if (first is not null && testPassed) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
    }
}
