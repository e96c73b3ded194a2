using WasteClassifier.Core;

namespace WasteClassifier.Api.Submissions;

/// <summary>A source names a camera or line; it becomes a filter and a report key, so it is kept short and plain.</summary>
public static class SourceNames
{
    public static IResult? Validate(string source) =>
        source.Length == 0 || SourceName.IsValid(source)
            ? null
            : ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_source", $"source must be {SourceName.Rule}");
}
