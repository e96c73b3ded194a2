namespace WasteClassifier.Cli.Ingest;

/// <summary>Everything <see cref="Ingester"/> needs to know; <c>wastectl ingest</c> fills it from its options.</summary>
public sealed class IngestOptions
{
    public required string Source { get; init; }

    /// <summary>A folder to watch (with <see cref="Once"/>: to scan once); null when <see cref="Paths"/> are given.</summary>
    public string? WatchDirectory { get; init; }

    public bool Recursive { get; init; }

    /// <summary>Files and globs (<c>*</c>, <c>?</c>, <c>**</c> for any depth); sent once, then the run ends.</summary>
    public IReadOnlyList<string> Paths { get; init; } = [];

    /// <summary>Exit after the files that exist at start (always so with <see cref="Paths"/>).</summary>
    public bool Once { get; init; }

    public required string StateFile { get; init; }
    public int Concurrency { get; init; } = 4;
    public int BatchSize { get; init; } = 16;
    public long MaxBatchBytes { get; init; } = 16L * 1024 * 1024;

    /// <summary>How long a partly filled batch waits for more files before it is sent.</summary>
    public TimeSpan BatchWait { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>A file is sent once its size and modification time have not changed for this long.</summary>
    public TimeSpan Settle { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A JPEG or PNG whose size and time settled but which still lacks its end marker this long after it last changed is
    /// refused as <c>incomplete_file</c> rather than waited for for ever; default 10 x <see cref="Settle"/>, at least 10 s.
    /// </summary>
    public TimeSpan? IncompleteAfter { get; init; }

    public TimeSpan IncompleteAfterOrDefault => IncompleteAfter ?? TimeSpan.FromTicks(Math.Max(Settle.Ticks * 10, TimeSpan.FromSeconds(10).Ticks));

    /// <summary>Watching also rescans the folder this often: watcher events can be lost (network shares, overflow).</summary>
    public TimeSpan Rescan { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Tries per request before it is left for later (the next rescan, or the next run).</summary>
    public int MaxAttempts { get; init; } = 8;

    /// <summary>First pause before a request is retried; it doubles up to <see cref="RetryMax"/>. Watching, a file that
    /// could not be read is read again on the same schedule (without giving up).</summary>
    public TimeSpan RetryBase { get; init; } = TimeSpan.FromMilliseconds(500);

    public TimeSpan RetryMax { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(100);

    public bool DeleteAfter { get; init; }
    public string? ArchiveDirectory { get; init; }

    /// <summary>
    /// Where a file refused for good goes (under its path relative to the watched folder), with a <c>NAME.error.json</c>
    /// beside it saying why; null: refused files stay where they are (recorded, never sent again).
    /// </summary>
    public string? FailedDirectory { get; init; }
    public TimeSpan ProgressInterval { get; init; } = TimeSpan.FromSeconds(2);
}
