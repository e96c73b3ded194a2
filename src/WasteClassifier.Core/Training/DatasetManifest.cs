namespace WasteClassifier.Core.Training;

/// <summary>One labelled image listed in a data set's manifest.csv.</summary>
public sealed record ManifestEntry(string Path, string Label);

/// <summary>Reads manifest.csv (columns found by header name: path, label; others ignored).</summary>
public static class DatasetManifest
{
    public const string FileName = "manifest.csv";

    public static IReadOnlyList<ManifestEntry> Read(string datasetDirectory)
    {
        var path = System.IO.Path.Combine(datasetDirectory, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"no {FileName} in {datasetDirectory}", path);
        using var reader = new StreamReader(path);
        var header = ParseLine(reader.ReadLine() ?? throw new InvalidDataException($"{path} is empty"));
        var pathColumn = ColumnIndex(header, "path", path);
        var labelColumn = ColumnIndex(header, "label", path);

        var entries = new List<ManifestEntry>();
        var lineNumber = 1;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var fields = ParseLine(line);
            if (fields.Count <= Math.Max(pathColumn, labelColumn)) throw new InvalidDataException($"{path}:{lineNumber}: too few columns");
            entries.Add(new ManifestEntry(fields[pathColumn], fields[labelColumn]));
        }
        return entries;
    }

    private static int ColumnIndex(List<string> header, string name, string path)
    {
        var index = header.FindIndex(h => string.Equals(h.Trim(), name, StringComparison.OrdinalIgnoreCase));
        return index >= 0 ? index : throw new InvalidDataException($"{path}: no '{name}' column in the header");
    }

    /// <summary>Splits one CSV line, honouring double-quoted fields (labels may contain commas).</summary>
    private static List<string> ParseLine(string line)
    {
        var fields = new List<string>();
        var current = new System.Text.StringBuilder();
        var quoted = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (quoted && c == '"' && i + 1 < line.Length && line[i + 1] == '"') { current.Append('"'); i++; }
            else if (c == '"') quoted = !quoted;
            else if (c == ',' && !quoted) { fields.Add(current.ToString()); current.Clear(); }
            else current.Append(c);
        }
        fields.Add(current.ToString());
        return fields;
    }
}
