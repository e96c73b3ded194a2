using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using WasteClassifier.Infrastructure.Security;

namespace WasteClassifier.Api.Security;

/// <summary>
/// Reads a key from <c>X-Api-Key</c> or <c>Authorization: Bearer</c>, hashes it and compares it in fixed time with every
/// configured hash. The key never reaches a log: only the configured key's name is recorded.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, ApiKeyStore keys)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string HeaderName = "X-Api-Key";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var presented = ReadKey(Request);
        if (presented is null) return Task.FromResult(AuthenticateResult.NoResult());
        var match = keys.Find(presented);
        if (match is null) return Task.FromResult(AuthenticateResult.Fail("the API key is not valid"));
        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, match.Value.Name), new Claim(ClaimTypes.Role, match.Value.Role),
            .. match.Value.Sources.Select(s => new Claim(SourceBindings.ClaimType, s))], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    public static string? ReadKey(HttpRequest request)
    {
        var header = request.Headers[HeaderName].ToString();
        if (header.Length > 0) return header.Trim();
        var authorization = request.Headers.Authorization.ToString();
        return authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && authorization.Length > 7 ? authorization[7..].Trim() : null;
    }
}

/// <summary>The configured keys, validated once at start.</summary>
public sealed class ApiKeyStore(AuthOptions options)
{
    private readonly IReadOnlyList<(string Name, string Role, byte[] Hash, IReadOnlyList<string> Sources)> _keys = options.Validated();

    public bool Any => _keys.Count > 0;

    public (string Name, string Role, IReadOnlyList<string> Sources)? Find(string key)
    {
        var digest = ApiKeys.Digest(key);
        (string, string, IReadOnlyList<string>)? found = null;
        // Every entry is compared (no early exit), each in fixed time: the timing says nothing about which key nearly matched.
        foreach (var (name, role, hash, sources) in _keys)
            if (CryptographicOperations.FixedTimeEquals(digest, hash)) found ??= (name, role, sources);
        return found;
    }
}
