using WasteClassifier.Core.Imaging;

namespace WasteClassifier.Core.Training;

/// <summary>
/// Extracted features on disk, one append-only file per backbone and view, keyed by the image's SHA-256:
/// retraining only runs the backbone on images it has not seen. Record: 32 hash bytes, then the floats.
/// Files are also named by the preprocessing's <see cref="ImageTensorWriter.PixelsVersion"/>: features of pixels that the
/// service no longer produces are deleted, not trained on. An instance is not thread-safe (one training run owns it), but
/// several may share the folder (trainer replicas on one volume, jobs in one process): each read and append of a file
/// holds an exclusive lock on it: .NET appends at the end it found when it opened the file, so two appenders at once
/// overwrote each other's records. A torn record is likewise only cut off while no one writes.
/// </summary>
public sealed class FeatureCache(string directory, string backboneId, int featureWidth, int pixelsVersion = ImageTensorWriter.PixelsVersion)
{
    private const int HashLength = 32;
    private readonly Dictionary<string, Dictionary<string, float[]>> loaded = [];

    public bool TryGet(string view, byte[] sha256, out float[] features) =>
        ViewEntries(view).TryGetValue(Convert.ToHexString(sha256), out features!);

    public void Add(string view, IReadOnlyList<(byte[] Sha256, float[] Features)> items)
    {
        var entries = ViewEntries(view);
        var path = FilePath(view);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var exclusive = LockFile(path);
        using var stream = new FileStream(path, FileMode.Append, FileAccess.Write);
        using var writer = new BinaryWriter(stream);
        foreach (var (sha, features) in items)
        {
            if (features.Length != featureWidth) throw new ArgumentException($"expected {featureWidth} features, got {features.Length}");
            writer.Write(sha);
            foreach (var f in features) writer.Write(f);
            entries[Convert.ToHexString(sha)] = features;
        }
    }

    // .NET takes FileShare.None as an advisory lock (flock on Unix), between processes and within one: a second opener
    // fails at once, so wait for the holder, whose appends take milliseconds.
    private static FileStream LockFile(string path)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            try
            {
                return new FileStream(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(10);
            }
        }
    }

    private string FilePath(string view) => Path.Combine(directory, backboneId, $"{view}.f{featureWidth}.p{pixelsVersion}.bin");

    // Earlier versions' files of this view (before versions were named, "{view}.f{width}.bin").
    private void DeleteStale(string view)
    {
        var folder = Path.Combine(directory, backboneId);
        if (!Directory.Exists(folder)) return;
        var current = FilePath(view);
        foreach (var path in Directory.EnumerateFiles(folder, $"{view}.f{featureWidth}.*bin"))
            if (path != current)
            {
                File.Delete(path);
                File.Delete(path + ".lock");
            }
    }

    private Dictionary<string, float[]> ViewEntries(string view)
    {
        if (loaded.TryGetValue(view, out var entries)) return entries;
        entries = [];
        DeleteStale(view);
        var path = FilePath(view);
        if (File.Exists(path))
        {
            using var exclusive = LockFile(path);
            var bytes = File.ReadAllBytes(path);
            var record = HashLength + featureWidth * sizeof(float);
            // A torn last record (interrupted run) is cut off so later appends stay aligned; it is recomputed.
            if (bytes.Length % record != 0)
            {
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Write);
                stream.SetLength(bytes.Length - bytes.Length % record);
            }
            for (var offset = 0; offset + record <= bytes.Length; offset += record)
            {
                var features = new float[featureWidth];
                Buffer.BlockCopy(bytes, offset + HashLength, features, 0, featureWidth * sizeof(float));
                entries[Convert.ToHexString(bytes, offset, HashLength)] = features;
            }
        }
        loaded[view] = entries;
        return entries;
    }
}
