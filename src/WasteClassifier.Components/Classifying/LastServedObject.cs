namespace WasteClassifier.Components.Classifying;

/// <summary>
/// The key of an object the store served this worker lately (one of this process, shared by its batches). A batch whose
/// every store read was refused (403) reads it again: served, it shows the worker may read and the refusals are about
/// those objects (see <see cref="ClassificationBatchProcessor"/>).
/// </summary>
public sealed class LastServedObject
{
    private volatile string? _key;

    /// <summary>Null until the store has served this worker an object.</summary>
    public string? Key
    {
        get => _key;
        set => _key = value;
    }
}
