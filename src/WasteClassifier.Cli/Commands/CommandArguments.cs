using System.Globalization;

namespace WasteClassifier.Cli.Commands;

/// <summary>Parsed <c>--name value</c> options and <c>--flag</c> switches of one verb.</summary>
public sealed class CommandArguments
{
    private readonly Dictionary<string, string> values = [];
    private readonly Dictionary<string, List<string>> repeated = [];
    private readonly HashSet<string> flags = [];
    private readonly List<string> paths = [];

    /// <param name="valueOptions">Options that take a value.</param>
    /// <param name="flagOptions">Switches without a value.</param>
    /// <param name="takesPaths">Whether bare arguments are collected in <see cref="Paths"/> (otherwise they are refused).</param>
    public CommandArguments(IEnumerable<string> args, IReadOnlySet<string> valueOptions, IReadOnlySet<string> flagOptions, bool takesPaths = false)
    {
        using var e = args.GetEnumerator();
        while (e.MoveNext())
        {
            var name = e.Current;
            if (name is "--help" or "-h") { Help = true; continue; }
            if (flagOptions.Contains(name)) { flags.Add(name); continue; }
            if (takesPaths && !name.StartsWith('-')) { paths.Add(name); continue; }
            if (!valueOptions.Contains(name)) throw new UsageException($"unknown option '{name}'");
            if (!e.MoveNext() || e.Current.StartsWith("--", StringComparison.Ordinal)) throw new UsageException($"{name} needs a value");
            values[name] = e.Current;
            if (!repeated.TryGetValue(name, out var all)) repeated[name] = all = [];
            all.Add(e.Current);
        }
    }

    public bool Help { get; }

    /// <summary>Bare arguments, in order (only for verbs that take paths).</summary>
    public IReadOnlyList<string> Paths => paths;

    public bool Flag(string name) => flags.Contains(name);

    /// <summary>The value given last; see <see cref="All"/> for an option that may be given more than once.</summary>
    public string? Optional(string name) => values.GetValueOrDefault(name);

    /// <summary>Every value of a repeatable option, in order (none: empty).</summary>
    public IReadOnlyList<string> All(string name) => repeated.TryGetValue(name, out var all) ? all : [];

    public string Required(string name) => Optional(name) ?? throw new UsageException($"{name} is required");

    public int Int(string name, int fallback, int min = 1) =>
        Optional(name) is not { } text ? fallback
        : int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min ? v
        : throw new UsageException($"{name} must be an integer ≥ {min}");

    public float Float(string name, float fallback, float min = 0, float max = float.MaxValue) =>
        Optional(name) is not { } text ? fallback
        : float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max ? v
        : throw new UsageException(max == float.MaxValue ? $"{name} must be a number ≥ {min.ToString(CultureInfo.InvariantCulture)}"
            : $"{name} must be a number in [{min.ToString(CultureInfo.InvariantCulture)}, {max.ToString(CultureInfo.InvariantCulture)}]");

    public string Choice(string name, string fallback, params string[] choices) =>
        Optional(name) is not { } text ? fallback
        : choices.Contains(text) ? text
        : throw new UsageException($"{name} must be one of: {string.Join(", ", choices)}");

    /// <summary>An existing directory, or a usage error naming the option.</summary>
    public static string ExistingDirectory(string path, string what) =>
        Directory.Exists(path) ? Path.GetFullPath(path) : throw new UsageException($"{what} not found: {path}");
}
