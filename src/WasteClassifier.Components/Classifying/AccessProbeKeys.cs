namespace WasteClassifier.Components.Classifying;

/// <summary>
/// Keys of objects this worker may read again to check its own access (one of this process, shared by its batches). A
/// batch whose every store read was refused (403) reads one: served, it shows the worker may read and the refusals are
/// about those objects (see <see cref="ClassificationBatchProcessor"/>).
/// </summary>
public sealed class AccessProbeKeys
{
    private volatile string? _served;
    private volatile string? _carried;

    /// <summary>The object the store served this worker last; null until it has served one. Preferred: a read with these credentials succeeded.</summary>
    public string? Served
    {
        get => _served;
        set => _served = value;
    }

    /// <summary>
    /// The object of an image that came in its message lately: the API stores every image before it sends its message,
    /// so a worker given only carried images (or none yet read) still has an object to check its access with.
    /// </summary>
    public string? Carried
    {
        get => _carried;
        set => _carried = value;
    }
}
