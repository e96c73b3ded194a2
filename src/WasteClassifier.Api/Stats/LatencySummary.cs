namespace WasteClassifier.Api.Stats;

/// <summary>Distribution of one latency figure over completed classifications, in milliseconds.</summary>
public sealed record LatencySummary(long Count, double? Min, double? Mean, double? P50, double? P95, double? P99, double? Max)
{
    public static LatencySummary Empty { get; } = new(0, null, null, null, null, null, null);

    /// <summary>Linear-interpolated percentiles (the same definition as PostgreSQL's percentile_cont).</summary>
    public static LatencySummary FromSorted(IReadOnlyList<double> sorted)
    {
        if (sorted.Count == 0) return Empty;
        return new(sorted.Count, sorted[0], Round(sorted.Average()), Percentile(sorted, 0.50), Percentile(sorted, 0.95), Percentile(sorted, 0.99), sorted[^1]);
    }

    public static double Percentile(IReadOnlyList<double> sorted, double fraction)
    {
        var position = fraction * (sorted.Count - 1);
        var lower = (int)Math.Floor(position);
        var upper = Math.Min(lower + 1, sorted.Count - 1);
        return Round(sorted[lower] + (sorted[upper] - sorted[lower]) * (position - lower));
    }

    public static double Round(double value) => Math.Round(value, 3);
}
