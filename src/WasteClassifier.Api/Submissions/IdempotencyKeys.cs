using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// An Idempotency-Key as its caller's own: <see cref="Scope"/> is the caller's API key name, or empty for callers without
/// one (they share one scope, as every caller did before keys were scoped).
/// </summary>
public sealed record IdempotencyKey(string Scope, string Value);

/// <summary>The Idempotency-Key header as the routes that take it read it, and their answer to a key reused for another request.</summary>
public static class IdempotencyKeyHeader
{
    public const string Name = "Idempotency-Key";
    public const int MaxLength = 128;

    /// <summary>The request's key scoped to its caller, or null when it sent none; a 400 for a key over <see cref="MaxLength"/>.</summary>
    public static IResult? Read(HttpRequest request, out IdempotencyKey? key)
    {
        key = null;
        var value = request.Headers[Name].ToString();
        if (value.Length > MaxLength)
            return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_idempotency_key", $"Idempotency-Key is limited to {MaxLength} characters");
        // Keys are the caller's own: another API key's request under the same key is not this one's.
        var scope = request.HttpContext.User.Identity is { IsAuthenticated: true, Name: { } name } ? name : "";
        if (value.Length > 0) key = new IdempotencyKey(scope, value);
        return null;
    }

    /// <param name="differences">What another request may differ in, e.g. "other files, file contents or source".</param>
    public static IResult Reused(string differences) =>
        ApiErrors.Result(StatusCodes.Status422UnprocessableEntity, "idempotency_key_reused",
            $"this Idempotency-Key was used for another request ({differences}); send a new request under a new key");
}

/// <summary>
/// What a repeat under an Idempotency-Key must match to be answered with the first request's rows, as mature APIs check a
/// key's request: the same source and, file by file in order, the same content. The rows hold the source and each
/// accepted file's image (its content hash); the fingerprint stored on them adds the file count and the hash of each file
/// the request refused, so nothing is stored twice. An empty file matches any file, in the repeat and in the original
/// alike: it is what <c>wastectl ingest</c> sends in place of a file gone, changed or unreadable at one try, and the file
/// may be readable at the other. An empty file is never stored, so the replay answers for the original's files as it
/// recorded them; a repeat's file at the place of an original empty one is not among the replay's items, and its client
/// sends it again under a new key.
/// </summary>
public static class IdempotencyFingerprints
{
    private const string Version = "v1";

    // The token of an empty file, which the intake always refuses.
    private static readonly string EmptyToken = Convert.ToHexStringLower(SHA256.HashData([]));

    /// <summary>E.g. <c>v1;3</c>, or <c>v1;3;1=9f86…</c> where the file at index 1 was refused.</summary>
    public static string Of(IReadOnlyList<UploadedImage> files, IReadOnlyList<RejectedImage> rejected)
    {
        var text = new StringBuilder(Version).Append(';').Append(files.Count.ToString(CultureInfo.InvariantCulture));
        foreach (var refused in rejected.OrderBy(r => r.Index))
            text.Append(';').Append(refused.Index.ToString(CultureInfo.InvariantCulture)).Append('=').Append(Token(files[refused.Index]));
        return text.ToString();
    }

    /// <summary>
    /// Whether <paramref name="files"/> from <paramref name="source"/> repeat the request that wrote <paramref name="rows"/>
    /// (all of one request, with their images, and a fingerprint).
    /// </summary>
    public static bool Matches(string fingerprint, IReadOnlyList<Classification> rows, IReadOnlyList<UploadedImage> files, string? source)
    {
        var parts = fingerprint.Split(';');
        if (parts.Length < 2 || parts[0] != Version || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var count)) return false;
        if (files.Count != count || rows.Any(r => r.Source != source)) return false;
        var original = new Dictionary<int, string>();
        foreach (var row in rows) original[row.IdempotencyIndex] = row.Image?.ContentHash ?? "";
        foreach (var part in parts.Skip(2))
        {
            var split = part.IndexOf('=', StringComparison.Ordinal);
            if (split < 0 || !int.TryParse(part.AsSpan(0, split), NumberStyles.None, CultureInfo.InvariantCulture, out var index)) return false;
            original[index] = part[(split + 1)..];
        }
        // An empty original file stands for one that could not be read then (a retry with its bytes must not be refused
        // for good: wastectl would resend it under this key for ever).
        return files.All(f => f.Length == 0 || (original.TryGetValue(f.Index, out var token) && (token == EmptyToken || token == Token(f))));
    }

    /// <summary>
    /// Of a labelled upload (a training job's, or samples'): the SHA-256 of its files in order (their contents, names and
    /// labels) and <paramref name="options"/>, which a retry must repeat exactly.
    /// </summary>
    public static string OfLabelled(IReadOnlyList<UploadedImage> files, IReadOnlyList<string> labels, string options)
    {
        var text = new StringBuilder(Version).Append('\n').Append(options);
        for (var i = 0; i < files.Count; i++)
            text.Append('\n').Append(Token(files[i])).Append('\t').Append(labels[i]).Append('\t').Append(files[i].FileName);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary>The file's SHA-256 as the intake writes it, or its length alone for a file over the limit (its bytes were not kept).</summary>
    private static string Token(UploadedImage file) =>
        file.Content.LongLength == file.Length ? Convert.ToHexStringLower(SHA256.HashData(file.Content)) : $"over:{file.Length.ToString(CultureInfo.InvariantCulture)}";
}
