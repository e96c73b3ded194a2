using System.Text.Json;
using WasteClassifier.Core;
using WasteClassifier.Infrastructure.Security;

namespace WasteClassifier.Cli.Commands;

/// <summary><c>wastectl keys hash</c>: the value to configure for a key; the key itself is never stored by the service.</summary>
public sealed class KeysHashCommand : ICommand
{
    public string Name => "keys hash";

    public string Summary => "print the hash to configure (Auth:Keys:N:Hash) for an API key";

    public string Usage => """
        wastectl keys hash [--key KEY]

          Prints sha256:<hex> for KEY (read from stdin when --key is not given, so it stays out of shell history).
          Configure it with a name and role, e.g. Auth__Keys__0__Name=line-3 Auth__Keys__0__Role=client
          Auth__Keys__0__Hash=sha256:…
        """;

    public IReadOnlySet<string> ValueOptions { get; } = new HashSet<string> { "--key" };

    public IReadOnlySet<string> FlagOptions { get; } = new HashSet<string>();

    public int Run(CommandArguments arguments)
    {
        var key = arguments.Optional("--key") ?? Console.In.ReadLine()?.Trim();
        if (string.IsNullOrEmpty(key)) throw new UsageException("give the key with --key or on stdin");
        Console.Out.WriteLine(ApiKeys.Hash(key));
        return 0;
    }
}

/// <summary><c>wastectl keys new</c>: a random key, shown once, and its configuration entry.</summary>
public sealed class KeysNewCommand : ICommand
{
    public string Name => "keys new";

    public string Summary => "generate an API key and print it with its configuration (hash only)";

    public string Usage => $"""
        wastectl keys new --name NAME [--role admin|client] [--source NAME]...

          Prints JSON: the key (give it to the client; it is not shown again), and the environment variables that
          configure its hash, name, role and sources (set N to the entry's index).
          --source NAME   bind the key to a source it may submit as (repeat for several): {SourceName.PatternRule};
                          a bound key needs Auth__RequireKeyForClassification=true, which is printed with it
        """;

    public IReadOnlySet<string> ValueOptions { get; } = new HashSet<string> { "--name", "--role", "--source" };

    public IReadOnlySet<string> FlagOptions { get; } = new HashSet<string>();

    public int Run(CommandArguments arguments)
    {
        var name = arguments.Optional("--name") ?? throw new UsageException("--name is required");
        var role = arguments.Optional("--role") ?? "client";
        if (role is not ("admin" or "client")) throw new UsageException("--role must be admin or client");
        var sources = arguments.All("--source");
        // Checked as the API checks its configuration at start, which a bad entry would stop.
        foreach (var source in sources)
            if (!SourceName.IsValidPattern(source)) throw new UsageException($"--source must be {SourceName.PatternRule} (got '{source}')");
        Console.Out.WriteLine(Describe(ApiKeys.Generate(), name, role, sources.Distinct(StringComparer.Ordinal).ToList()));
        return 0;
    }

    /// <summary>The JSON printed for a new <paramref name="key"/>: it, and the configuration of its hash (never the key itself).</summary>
    public static string Describe(string key, string name, string role, IReadOnlyList<string> sources)
    {
        var hash = ApiKeys.Hash(key);
        // Sources are a list: one index each (a plain value stops the API at start), and a binding means something only
        // while every client call needs a key.
        string[] environment =
        [
            $"Auth__Keys__N__Name={name}", $"Auth__Keys__N__Role={role}", $"Auth__Keys__N__Hash={hash}",
            .. sources.Select((s, i) => $"Auth__Keys__N__Sources__{i}={s}"),
            .. sources.Count > 0 ? ["Auth__RequireKeyForClassification=true"] : Array.Empty<string>(),
        ];
        return JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["key"] = key,
            ["name"] = name,
            ["role"] = role,
            ["sources"] = sources,
            ["hash"] = hash,
            ["environment"] = environment,
        });
    }
}
