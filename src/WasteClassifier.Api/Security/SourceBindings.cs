using System.Security.Claims;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Security;

/// <summary>
/// A key bound to sources (<c>Auth:Keys:N:Sources</c>) submits only as those: a line's key cannot count its images in
/// another line's composition. Unbound keys, and callers without a key, submit as any source.
/// </summary>
public static class SourceBindings
{
    /// <summary>One claim per source name (or <c>prefix*</c>) the caller's key is bound to.</summary>
    public const string ClaimType = "wc:source";

    /// <summary>
    /// The source to record for <paramref name="source"/> (empty: none given), or the refusal: a source the key is not bound
    /// to is a 403 <c>source_not_allowed</c>; none given takes the key's one source, and is a 400 <c>source_required</c>
    /// when it has several (or a prefix), which one being the caller's to say.
    /// </summary>
    public static IResult? Resolve(ClaimsPrincipal user, string source, out string? resolved)
    {
        resolved = source.Length == 0 ? null : source;
        var allowed = user.FindAll(ClaimType).Select(c => c.Value).ToList();
        if (allowed.Count == 0) return null;
        if (resolved is null)
        {
            if (allowed is [var only] && !only.EndsWith('*'))
            {
                resolved = only;
                return null;
            }
            return ApiErrors.Result(StatusCodes.Status400BadRequest, "source_required",
                $"this API key submits only as {string.Join(", ", allowed)}: give source");
        }
        var given = resolved;
        if (allowed.Any(pattern => Matches(pattern, given))) return null;
        return ApiErrors.Result(StatusCodes.Status403Forbidden, "source_not_allowed",
            $"this API key may submit only as {string.Join(", ", allowed)}, not '{given}'");
    }

    /// <summary>A name matches itself; <c>line-*</c> matches every name that starts with <c>line-</c>.</summary>
    public static bool Matches(string pattern, string source) =>
        pattern.EndsWith('*') ? source.StartsWith(pattern[..^1], StringComparison.Ordinal) : source == pattern;
}
