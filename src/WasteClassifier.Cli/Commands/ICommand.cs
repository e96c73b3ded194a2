namespace WasteClassifier.Cli.Commands;

/// <summary>One wastectl verb. Output for machines goes to stdout, logs to stderr.</summary>
public interface ICommand
{
    /// <summary>The verb's words, e.g. <c>train</c> or <c>models import</c>.</summary>
    string Name { get; }

    string Summary { get; }

    string Usage { get; }

    /// <summary>Options that take a value, e.g. <c>--data</c>.</summary>
    IReadOnlySet<string> ValueOptions { get; }

    /// <summary>Switches without a value.</summary>
    IReadOnlySet<string> FlagOptions { get; }

    /// <summary>Whether bare arguments (files, globs) are allowed after the options; most verbs take none.</summary>
    bool TakesPaths => false;

    /// <summary>Returns the process exit code; throws <see cref="UsageException"/> for bad arguments.</summary>
    int Run(CommandArguments arguments);
}
