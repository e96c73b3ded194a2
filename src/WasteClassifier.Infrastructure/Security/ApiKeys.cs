using System.Security.Cryptography;
using System.Text;

namespace WasteClassifier.Infrastructure.Security;

/// <summary>
/// API keys are random 256-bit secrets, so a plain SHA-256 of the key is enough at rest (no salt or slow hash is needed
/// against guessing: the key space is too large to enumerate). Only the hash is configured; the key itself is never stored.
/// </summary>
public static class ApiKeys
{
    public const string HashPrefix = "sha256:";

    /// <summary>A new key: "wc_" and 43 base64url characters (32 random bytes).</summary>
    public static string Generate() =>
        "wc_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>The value to configure as <c>Auth:Keys:N:Hash</c>: "sha256:" and 64 lower-case hex digits.</summary>
    public static string Hash(string key) => HashPrefix + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>Reads a configured hash (with or without the "sha256:" prefix); null when it is not 32 bytes of hex.</summary>
    public static byte[]? ParseHash(string? configured)
    {
        if (string.IsNullOrWhiteSpace(configured)) return null;
        var hex = configured.Trim();
        if (hex.StartsWith(HashPrefix, StringComparison.OrdinalIgnoreCase)) hex = hex[HashPrefix.Length..];
        if (hex.Length != 64) return null;
        try
        {
            return Convert.FromHexString(hex);
        }
        catch (FormatException)
        {
            return null;
        }
    }

    public static byte[] Digest(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
