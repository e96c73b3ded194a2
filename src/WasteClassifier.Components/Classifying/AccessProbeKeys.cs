namespace WasteClassifier.Components.Classifying;

/// <summary>
/// Keys of objects this worker may read again to check its own access (one of this process, shared by its batches). A
/// batch whose every store read was refused (403) reads one: served, it shows the worker may read and the refusals are
/// about those objects (see <see cref="ClassificationBatchProcessor"/>).
/// </summary>
public sealed class AccessProbeKeys
{
    private string? _served;
    private string? _carried;

    /// <summary>The object the store served this worker last; null until it has served one. Preferred: a read with these credentials succeeded.</summary>
    public string? Served
    {
        get => Volatile.Read(ref _served);
        set => Volatile.Write(ref _served, value);
    }

    /// <summary>
    /// The object of an image that came in its message lately: the API stores every image before it sends its message,
    /// so a worker given only carried images (or none yet read) still has an object to check its access with.
    /// </summary>
    public string? Carried
    {
        get => Volatile.Read(ref _carried);
        set => Volatile.Write(ref _carried, value);
    }

    private CompletedLookup? _completed;

    /// <summary>How long the looked-up key of the classification completed last (or its absence) is kept.</summary>
    public static readonly TimeSpan CompletedKeyLifetime = TimeSpan.FromMinutes(1);

    /// <summary>
    /// The key of the classification completed last as looked up at most <see cref="CompletedKeyLifetime"/> before
    /// <paramref name="now"/> (null in it: none, or gone); false when there is no such lookup: each faulted batch of a
    /// fresh worker queried the database again.
    /// </summary>
    public bool TryGetCompleted(DateTime now, out string? key)
    {
        var lookup = Volatile.Read(ref _completed);
        key = lookup?.Key;
        return lookup is not null && now - lookup.At < CompletedKeyLifetime && now >= lookup.At;
    }

    /// <summary>Keeps the key of the classification completed last (null: none), looked up at <paramref name="at"/>.</summary>
    public void SetCompleted(string? key, DateTime at) => Volatile.Write(ref _completed, new CompletedLookup(key, at));

    /// <summary>
    /// Drops <paramref name="key"/> wherever it is kept (the object is gone, so it can check nothing any more), unless a
    /// batch has replaced it meanwhile.
    /// </summary>
    public void Forget(string key)
    {
        Interlocked.CompareExchange(ref _served, null, key);
        Interlocked.CompareExchange(ref _carried, null, key);
        // Gone, until the lookup expires.
        if (Volatile.Read(ref _completed) is { } lookup && lookup.Key == key)
            Interlocked.CompareExchange(ref _completed, lookup with { Key = null }, lookup);
    }

    private sealed record CompletedLookup(string? Key, DateTime At);
}
