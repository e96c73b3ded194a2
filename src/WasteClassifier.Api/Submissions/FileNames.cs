using System.Text;

namespace WasteClassifier.Api.Submissions;

/// <summary>Client filenames are kept for display only: path parts, control characters and overlong names are removed.</summary>
public static class FileNames
{
    public static string? Sanitize(string? fileName)
    {
        if (string.IsNullOrWhiteSpace(fileName)) return null;
        var name = fileName.Replace('\\', '/');
        name = name[(name.LastIndexOf('/') + 1)..];
        var clean = new StringBuilder(name.Length);
        foreach (var c in name)
            if (!char.IsControl(c) && c is not ('<' or '>' or '"' or '|' or '?' or '*' or ':')) clean.Append(c);
        var result = clean.ToString().Trim().TrimStart('.');
        if (result.Length > 200) result = result[..200];
        return result.Length == 0 ? null : result;
    }
}
