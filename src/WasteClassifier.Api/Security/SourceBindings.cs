using System.Security.Claims;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Security;

/// <summary>
/// A key bound to sources (<c>Auth:Keys:N:Sources</c>) submits only as those: a line's key cannot count its images in
/// another line's composition. Unbound keys submit as any source; a binding needs a key of every caller (see
/// <see cref="AuthOptions.Validated"/>).
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
        var refusal = Resolve(Allowed(user), source.Length == 0 ? null : source, out resolved);
        return refusal is null ? null
            : ApiErrors.Result(refusal.Error == SourceRequired ? StatusCodes.Status400BadRequest : StatusCodes.Status403Forbidden, refusal.Error, refusal.Message);
    }

    public const string SourceRequired = "source_required";
    public const string SourceNotAllowed = "source_not_allowed";

    /// <summary>The sources the caller's key is bound to; empty: any.</summary>
    public static IReadOnlyList<string> Allowed(ClaimsPrincipal user) => user.FindAll(ClaimType).Select(c => c.Value).ToList();

    /// <summary>As <see cref="Resolve(ClaimsPrincipal, string, out string?)"/>, for <paramref name="source"/> (null: none given).</summary>
    public static ApiError? Resolve(IReadOnlyList<string> allowed, string? source, out string? resolved)
    {
        resolved = source;
        if (allowed.Count == 0) return null;
        if (source is null)
        {
            if (allowed is [var only] && !only.EndsWith('*'))
            {
                resolved = only;
                return null;
            }
            return new ApiError(SourceRequired, $"this API key submits only as {string.Join(", ", allowed)}: give source");
        }
        if (allowed.Any(pattern => Matches(pattern, source))) return null;
        return new ApiError(SourceNotAllowed, $"this API key may submit only as {string.Join(", ", allowed)}, not '{source}'");
    }

    /// <summary>A name matches itself; <c>line-*</c> matches every name that starts with <c>line-</c>.</summary>
    public static bool Matches(string pattern, string source) =>
        pattern.EndsWith('*') ? source.StartsWith(pattern[..^1], StringComparison.Ordinal) : source == pattern;
}
