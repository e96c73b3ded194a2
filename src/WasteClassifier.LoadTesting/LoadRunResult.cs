namespace WasteClassifier.LoadTesting;

public sealed record LoadRunResult(LoadTestOptions Options, string Target, DateTimeOffset StartedAt, TimeSpan Elapsed, IReadOnlyList<RequestRecord> Records);
