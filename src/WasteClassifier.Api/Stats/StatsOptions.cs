namespace WasteClassifier.Api.Stats;

/// <summary>Configuration section <c>Stats</c>: how long a replica reuses a computed <c>GET /stats</c>.</summary>
public sealed class StatsOptions
{
    public const string Section = "Stats";

    /// <summary>
    /// Seconds a computed /stats answer is reused by every caller of this replica; 0 computes one per request. Each
    /// computation reads the whole classifications table, so without it every open dashboard (one call every 5 s) adds a
    /// full scan. A computation that took longer is reused for <see cref="SlowComputationFactor"/> times its duration.
    /// </summary>
    public double CacheSeconds { get; set; } = 5;

    /// <summary>A computation that took t is reused for at least this many times t, so /stats keeps the database busy at most 1/(1+factor) of the time.</summary>
    public const double SlowComputationFactor = 4;

    public const double MaxCacheSeconds = 3600;

    /// <summary>Refuses a value out of range at start, naming the setting.</summary>
    public StatsOptions Validated()
    {
        if (!(CacheSeconds is >= 0 and <= MaxCacheSeconds))
            throw new InvalidOperationException($"{Section}:{nameof(CacheSeconds)} is {CacheSeconds}; it must be 0 to {MaxCacheSeconds}");
        return this;
    }
}
