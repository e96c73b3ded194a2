namespace WasteClassifier.LoadTesting;

/// <param name="ArrivalsDelayed">Open loop: arrivals that waited for one of <see cref="LoadTestOptions.MaxInFlight"/> slots (sent late, in a burst).</param>
/// <param name="ArrivalsNotSent">Open loop: arrivals due before the end that were never sent, every slot being taken.</param>
/// <param name="Interrupted">The run was cancelled (Ctrl+C or SIGTERM) before its duration and drain were over.</param>
/// <param name="RefusedEverything">
/// Why sending stopped early: every image was refused before any was accepted, or the caller (its key) was refused that
/// many times since the last acceptance (<see cref="LoadRunner.MinRefusalsToStop"/>), naming the refusals; null otherwise.
/// </param>
public sealed record LoadRunResult(LoadTestOptions Options, string Target, DateTimeOffset StartedAt, TimeSpan Elapsed, IReadOnlyList<RequestRecord> Records,
    int ArrivalsDelayed = 0, int ArrivalsNotSent = 0, bool Interrupted = false, string? RefusedEverything = null);
