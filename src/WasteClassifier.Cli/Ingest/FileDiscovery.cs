using System.Text.RegularExpressions;

namespace WasteClassifier.Cli.Ingest;

/// <summary>Which files are candidates: globs expanded, and a folder's files minus those a writer has not finished naming.</summary>
public static class FileDiscovery
{
    // Names uploaders use while a file is still being written (then renamed), and our own state file.
    private static readonly string[] PartialSuffixes = [".tmp", ".part", ".partial", ".filepart", ".crdownload", ".swp"];

    public static bool IsCandidate(string path)
    {
        var name = Path.GetFileName(path);
        return name.Length > 0 && name[0] != '.' && !PartialSuffixes.Any(s => name.EndsWith(s, StringComparison.OrdinalIgnoreCase));
    }

    /// <param name="exclude">Folders whose files are not candidates (the archive, the failed-files folder), without a trailing separator.</param>
    public static IEnumerable<string> ScanDirectory(string directory, bool recursive, IReadOnlyList<string> exclude)
    {
        if (!Directory.Exists(directory)) return [];
        var options = new EnumerationOptions { RecurseSubdirectories = recursive, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.Hidden };
        return Directory.EnumerateFiles(directory, "*", options)
            .Where(IsCandidate)
            .Where(p => !IsUnder(Path.GetFullPath(p), exclude))
            .Select(Path.GetFullPath)
            .Order(StringComparer.Ordinal);
    }

    /// <summary>Whether <paramref name="path"/> (full) lies in one of <paramref name="folders"/> (full, without a trailing separator).</summary>
    public static bool IsUnder(string path, IReadOnlyList<string> folders) =>
        folders.Any(f => path.StartsWith(f + Path.DirectorySeparatorChar, StringComparison.Ordinal));

    /// <summary>The subfolders a scan without recursion leaves out (hidden ones and <paramref name="exclude"/> aside).</summary>
    public static int Subfolders(string directory, IReadOnlyList<string> exclude)
    {
        if (!Directory.Exists(directory)) return 0;
        var options = new EnumerationOptions { IgnoreInaccessible = true, AttributesToSkip = FileAttributes.Hidden };
        // --archive given with a trailing separator names the same folder.
        var excluded = exclude.Select(e => Path.TrimEndingDirectorySeparator(Path.GetFullPath(e))).ToList();
        return Directory.EnumerateDirectories(directory, "*", options)
            .Count(d => !Path.GetFileName(d).StartsWith('.') && !excluded.Contains(Path.TrimEndingDirectorySeparator(Path.GetFullPath(d))));
    }

    /// <summary>
    /// Where <paramref name="pattern"/>'s files lie: the file or folder itself, or a glob's folders before its first wildcard
    /// (the current folder when it starts with one).
    /// </summary>
    public static string Root(string pattern) => pattern.IndexOfAny(['*', '?']) < 0 ? pattern : Split(pattern).Root;

    private static (string Root, string Remainder) Split(string pattern)
    {
        var parts = pattern.Replace('\\', '/').Split('/');
        var literal = parts.TakeWhile(p => p.IndexOfAny(['*', '?']) < 0).ToList();
        var root = literal.Count == 0 ? "." : string.Join('/', literal);
        if (root.Length == 0) root = "/";
        return (root, string.Join('/', parts.Skip(literal.Count)));
    }

    /// <summary>Files, folders (their files) and globs: <c>*</c> and <c>?</c> within a name, <c>**</c> for any number of folders.</summary>
    public static IReadOnlyList<string> Expand(IEnumerable<string> patterns, bool recursive)
    {
        var found = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var pattern in patterns)
        {
            if (pattern.IndexOfAny(['*', '?']) < 0)
            {
                if (File.Exists(pattern)) found.Add(Path.GetFullPath(pattern));
                else if (Directory.Exists(pattern)) found.UnionWith(ScanDirectory(pattern, recursive, []));
                else throw new FileNotFoundException($"no such file or folder: {pattern}");
                continue;
            }
            var (root, rest) = Split(pattern);
            var regex = new Regex("^" + Regex.Escape(rest).Replace(@"\*\*/", "(.*/)?").Replace(@"\*\*", ".*").Replace(@"\*", "[^/]*").Replace(@"\?", "[^/]") + "$");
            var deep = rest.Contains('/') || rest.Contains("**");
            if (!Directory.Exists(root)) continue;
            foreach (var file in ScanDirectory(root, deep, []))
            {
                var relative = Path.GetRelativePath(Path.GetFullPath(root), file).Replace('\\', '/');
                if (regex.IsMatch(relative)) found.Add(file);
            }
        }
        return found.ToList();
    }
}
