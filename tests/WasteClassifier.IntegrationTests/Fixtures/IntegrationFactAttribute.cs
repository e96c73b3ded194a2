namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>
/// A test that needs the real servers. It runs when their endpoints are given (WASTE_TEST_* variables, set by
/// tests/run.sh) or Docker can start them. Only outside CI is it skipped when neither holds; on CI it runs and fails.
/// </summary>
public sealed class IntegrationFactAttribute : FactAttribute
{
    public IntegrationFactAttribute()
    {
        if (!TestServices.Available && !TestServices.IsCi)
            Skip = "no WASTE_TEST_* endpoints and no Docker: run tests/run.sh, which starts the servers";
    }
}
