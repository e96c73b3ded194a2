using System.Globalization;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// Content hashes this process has recorded or looked up lately. For these the intake reads the image row first (a
/// repeated upload reuses it); for any other it inserts straight away and lets the unique object key settle the rare
/// case where another process recorded the same bytes: that save fails, and the retry looks the row up. This spares a
/// new image, the common case (camera frames, the load tester), a database round trip and a transaction.
/// </summary>
public sealed class SeenContentHashes(int capacity = SeenContentHashes.DefaultCapacity)
{
    public const int DefaultCapacity = 100_000;

    private readonly Lock _gate = new();
    // Two generations: when the current one is full it becomes the previous one, so memory stays bounded (a 64-bit
    // prefix per hash, at most twice the capacity) and the most recent hashes are always kept. A prefix shared by two
    // hashes only costs a lookup.
    private HashSet<ulong> _current = [];
    private HashSet<ulong> _previous = [];

    public bool Contains(string contentHash)
    {
        var key = Key(contentHash);
        lock (_gate) return _current.Contains(key) || _previous.Contains(key);
    }

    public void Add(string contentHash)
    {
        var key = Key(contentHash);
        lock (_gate)
        {
            if (_previous.Contains(key) || !_current.Add(key) || _current.Count < capacity) return;
            _previous = _current;
            _current = [];
        }
    }

    // Hex SHA-256 from the intake; anything shorter or not hex (never expected) still gets a stable key.
    private static ulong Key(string contentHash) =>
        contentHash.Length >= 16 && ulong.TryParse(contentHash.AsSpan(0, 16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var key)
            ? key
            : (ulong)StringComparer.Ordinal.GetHashCode(contentHash);
}
