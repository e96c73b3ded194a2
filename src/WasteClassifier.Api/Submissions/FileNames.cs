using System.Globalization;
using System.Text;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// Client filenames are kept for display only: path parts and control characters are removed, and a name over
/// <see cref="MaxLength"/> is shortened, keeping its extension.
/// </summary>
public static class FileNames
{
    /// <summary>The longest name kept, in UTF-16 units (the columns hold 256).</summary>
    public const int MaxLength = 200;

    /// <summary>The longest extension, with its dot, that shortening keeps (<c>.jpeg</c>, <c>.webp</c>).</summary>
    public const int MaxExtensionLength = 16;

    public static string? Sanitize(string? fileName)
    {
        if (string.IsNullOrWhiteSpace(fileName)) return null;
        var name = fileName.Replace('\\', '/');
        name = name[(name.LastIndexOf('/') + 1)..];
        var clean = new StringBuilder(name.Length);
        foreach (var c in name)
            if (!char.IsControl(c) && c is not ('<' or '>' or '"' or '|' or '?' or '*' or ':')) clean.Append(c);
        var result = clean.ToString().Trim().TrimStart('.');
        if (result.Length > MaxLength)
        {
            // The stem is shortened, not the end: a cut name lost its extension, which is what shows the file's type.
            var extension = ExtensionOf(result);
            result = result[..CutAt(result, MaxLength - extension.Length)] + extension;
        }
        return result.Length == 0 ? null : result;
    }

    /// <summary>The name's extension with its dot (<c>.jpg</c>), or empty: a short run of letters and digits after the last dot.</summary>
    private static string ExtensionOf(string name)
    {
        var dot = name.LastIndexOf('.');
        var extension = dot > 0 ? name[dot..] : "";
        return extension.Length is >= 2 and <= MaxExtensionLength && extension.Skip(1).All(char.IsAsciiLetterOrDigit) ? extension : "";
    }

    /// <summary>
    /// The end of the last whole text element within <paramref name="length"/>: a cut inside a surrogate pair left half of
    /// it, which is not UTF-8, so PostgreSQL's driver refused the row and the whole request failed.
    /// </summary>
    private static int CutAt(string name, int length)
    {
        var end = 0;
        while (end < name.Length)
        {
            var next = end + StringInfo.GetNextTextElementLength(name, end);
            if (next > length) break;
            end = next;
        }
        return end;
    }
}
