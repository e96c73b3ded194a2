using WasteClassifier.Core;
using WasteClassifier.Infrastructure.Security;

namespace WasteClassifier.Api.Security;

/// <summary>Configuration section <c>Auth</c>: API keys (hashes only) and which endpoints need one.</summary>
public sealed class AuthOptions
{
    public const string Section = "Auth";

    /// <summary>
    /// Configured keys: a name (for logs, rate limits and the scope of Idempotency-Keys; without one, see
    /// <see cref="UnnamedKeyName"/>), the key's hash (see <c>wastectl keys hash</c>) and a role.
    /// </summary>
    public List<ApiKeyEntry> Keys { get; set; } = [];

    /// <summary>When true, submitting and reading classifications needs a key of any role; when false (default) they are open.</summary>
    public bool RequireKeyForClassification { get; set; }

    /// <summary>
    /// With no keys configured (the embedded default), admin calls are allowed from loopback only, so a fresh install
    /// works on its own machine and nothing on the network can retrain or promote. Any configured key turns this off.
    /// </summary>
    public bool AllowLoopbackAdminWithoutKeys { get; set; } = true;

    public sealed class ApiKeyEntry
    {
        public string Name { get; set; } = "";
        public string Hash { get; set; } = "";
        public string Role { get; set; } = Roles.Client;

        /// <summary>The sources this key may submit as (names, or a prefix ending in <c>*</c>); empty: any (see <see cref="SourceBindings"/>).</summary>
        public List<string> Sources { get; set; } = [];
    }

    /// <summary>
    /// The section bound from <paramref name="configuration"/>, refusing what the binder would silently drop: a plain
    /// <c>Auth:Keys:N:Sources</c> value (<c>Auth__Keys__2__Sources=line-3</c>, JSON <c>"Sources": "line-3"</c>) is ignored
    /// for a list, which would leave the key unbound, free to submit as any source.
    /// </summary>
    public static AuthOptions Bind(IConfiguration configuration)
    {
        foreach (var key in configuration.GetSection($"{Section}:Keys").GetChildren())
            if (key.GetSection("Sources").Value is { } plain && !string.IsNullOrWhiteSpace(plain))
                throw new InvalidOperationException(
                    $"{Section}:Keys:{key.Key}:Sources is a list: give each source its own index, {Section}:Keys:{key.Key}:Sources:0 " +
                    $"(Auth__Keys__{key.Key}__Sources__0={plain}; in JSON \"Sources\": [\"{plain}\"])");
        return configuration.GetSection(Section).Get<AuthOptions>() ?? new AuthOptions();
    }

    /// <summary>The usable keys; throws at start on a malformed entry, so a typo never silently opens or closes the API.</summary>
    public IReadOnlyList<(string Name, string Role, byte[] Hash, IReadOnlyList<string> Sources)> Validated()
    {
        var keys = new List<(string, string, byte[], IReadOnlyList<string>)>();
        // A keyless caller has no sources to be held to, so a binding means something only while every client call needs a key.
        if (!RequireKeyForClassification && Keys.FindIndex(k => k.Sources.Count > 0) is var bound and >= 0)
            throw new InvalidOperationException(
                $"Auth:Keys:{bound}:Sources binds a key to sources, but Auth:RequireKeyForClassification is false: a caller without a key " +
                "submits as any source. Set Auth:RequireKeyForClassification to true, or remove the Sources");
        foreach (var (entry, index) in Keys.Select((k, i) => (k, i)))
        {
            var hash = ApiKeys.ParseHash(entry.Hash)
                ?? throw new InvalidOperationException($"Auth:Keys:{index}:Hash must be a SHA-256 hex digest (wastectl keys hash); the key itself is never configured");
            var role = entry.Role.Trim().ToLowerInvariant();
            if (role is not (Roles.Admin or Roles.Client))
                throw new InvalidOperationException($"Auth:Keys:{index}:Role must be '{Roles.Admin}' or '{Roles.Client}'");
            var sources = entry.Sources.Select(s => s.Trim()).ToList();
            foreach (var (source, at) in sources.Select((s, i) => (s, i)))
                if (!SourceName.IsValidPattern(source))
                    throw new InvalidOperationException($"Auth:Keys:{index}:Sources:{at} must be {SourceName.PatternRule}");
            // An unnamed key is named after its hash, not its place in the list: removing an earlier entry must not rename it,
            // since the name is its rate-limit bucket and the scope of its Idempotency-Keys.
            keys.Add((string.IsNullOrWhiteSpace(entry.Name) ? UnnamedKeyName(hash) : entry.Name.Trim(), role, hash, sources));
        }
        return keys;
    }

    /// <summary><c>key-</c> and the first 12 hex digits of the key's SHA-256 (nothing a caller could use to guess the key).</summary>
    public static string UnnamedKeyName(byte[] hash) => "key-" + Convert.ToHexStringLower(hash)[..12];
}

public static class Roles
{
    public const string Admin = "admin";
    public const string Client = "client";
}
