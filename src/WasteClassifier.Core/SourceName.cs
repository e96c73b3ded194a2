using System.Text.RegularExpressions;

namespace WasteClassifier.Core;

/// <summary>
/// What a source (a camera or line) may be called: the API refuses other names (400 invalid_source), and
/// <c>wastectl ingest</c> checks its --source by the same rule before it starts.
/// </summary>
public static partial class SourceName
{
    public const string Rule = "1–128 characters: ASCII letters, digits and . _ : / -, starting with a letter or digit";

    // \z, not $: $ also matches before a final newline, and "line-3\n" is not a name.
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}\z")]
    private static partial Regex Valid();

    public static bool IsValid(string source) => Valid().IsMatch(source);

    /// <summary>What a key may be bound to (<c>Auth:Keys:N:Sources</c>), as the API checks it at start and <c>wastectl keys new</c> before.</summary>
    public const string PatternRule = "a source name (letters, digits and . _ : / -) or a prefix ending in *";

    /// <summary>A source name, or a non-empty prefix of one ending in <c>*</c> (<c>hall-b/*</c>).</summary>
    public static bool IsValidPattern(string pattern)
    {
        var name = pattern.EndsWith('*') ? pattern[..^1] : pattern;
        return name.Length > 0 && IsValid(name);
    }
}
