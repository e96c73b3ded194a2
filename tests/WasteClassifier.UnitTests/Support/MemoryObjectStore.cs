using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.UnitTests.Support;

/// <summary>An object store in memory, which can also serve short reads (an object being rewritten in place).</summary>
internal sealed class MemoryObjectStore : IObjectStore
{
    private readonly Dictionary<string, byte[]> _objects = [];

    /// <summary>The next reads, of any object, return no bytes: an object being rewritten in place.</summary>
    public int ShortReadsLeft { get; set; }

    /// <summary>Objects that always read as no bytes.</summary>
    public HashSet<string> ShortKeys { get; } = [];

    public Task EnsureReadyAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Runs after a put, given its key: something else that happens once an object is stored.</summary>
    public Action<string>? AfterPut { get; set; }

    /// <summary>The keys of the objects stored.</summary>
    public IReadOnlyList<string> Keys
    {
        get
        {
            lock (_objects) return _objects.Keys.ToList();
        }
    }

    public Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken)
    {
        lock (_objects) _objects[key] = content.ToArray();
        AfterPut?.Invoke(key);
        return Task.CompletedTask;
    }

    /// <summary>How many reads were made, of any object.</summary>
    public int Reads { get; private set; }

    /// <summary>Runs before a read, given its key: something else that happens while a batch is being fetched.</summary>
    public Func<string, Task>? BeforeRead { get; set; }

    public async Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken)
    {
        if (BeforeRead is { } before) await before(key);
        lock (_objects)
        {
            Reads++;
            if (ShortKeys.Contains(key) || ShortReadsLeft > 0 && ShortReadsLeft-- > 0) return [];
            return _objects.GetValueOrDefault(key);
        }
    }

    public async Task<byte[]?> GetAsync(string key, long maxBytes, CancellationToken cancellationToken)
    {
        var content = await GetAsync(key, cancellationToken);
        return content?.LongLength > maxBytes ? throw new ObjectTooLargeException(key, maxBytes) : content;
    }

    /// <summary>Runs before a size look-up, given its key.</summary>
    public Func<string, Task>? BeforeSize { get; set; }

    /// <summary>A size look-up, not a read: as the real stores' (a HEAD, a file's length).</summary>
    public async Task<long?> SizeAsync(string key, CancellationToken cancellationToken)
    {
        if (BeforeSize is { } before) await before(key);
        lock (_objects) return _objects.GetValueOrDefault(key)?.LongLength;
    }

    /// <summary>Runs before a delete, given its key.</summary>
    public Func<string, Task>? BeforeDelete { get; set; }

    public async Task DeleteAsync(string key, CancellationToken cancellationToken)
    {
        if (BeforeDelete is { } before) await before(key);
        lock (_objects) _objects.Remove(key);
    }

    public Task CheckAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
