using System.Globalization;
using System.Text;

namespace WasteClassifier.Api.Submissions;

/// <summary>Client filenames are kept for display only: path parts, control characters and overlong names are removed.</summary>
public static class FileNames
{
    /// <summary>The longest name kept, in UTF-16 units (the columns hold 256).</summary>
    public const int MaxLength = 200;

    public static string? Sanitize(string? fileName)
    {
        if (string.IsNullOrWhiteSpace(fileName)) return null;
        var name = fileName.Replace('\\', '/');
        name = name[(name.LastIndexOf('/') + 1)..];
        var clean = new StringBuilder(name.Length);
        foreach (var c in name)
            if (!char.IsControl(c) && c is not ('<' or '>' or '"' or '|' or '?' or '*' or ':')) clean.Append(c);
        var result = clean.ToString().Trim().TrimStart('.');
        if (result.Length > MaxLength) result = result[..CutAt(result)];
        return result.Length == 0 ? null : result;
    }

    /// <summary>
    /// The end of the last whole text element within <see cref="MaxLength"/>: a cut inside a surrogate pair left half of
    /// it, which is not UTF-8, so PostgreSQL's driver refused the row and the whole request failed.
    /// </summary>
    private static int CutAt(string name)
    {
        var end = 0;
        while (end < name.Length)
        {
            var next = end + StringInfo.GetNextTextElementLength(name, end);
            if (next > MaxLength) break;
            end = next;
        }
        return end;
    }
}
