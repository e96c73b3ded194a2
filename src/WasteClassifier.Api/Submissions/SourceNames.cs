using System.Text.RegularExpressions;

namespace WasteClassifier.Api.Submissions;

/// <summary>A source names a camera or line; it becomes a filter and a report key, so it is kept short and plain.</summary>
public static partial class SourceNames
{
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")]
    private static partial Regex Valid();

    public static IResult? Validate(string source) =>
        source.Length == 0 || Valid().IsMatch(source)
            ? null
            : ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_source", "source must be 1–128 characters: letters, digits and . _ : / -, starting with a letter or digit");
}
