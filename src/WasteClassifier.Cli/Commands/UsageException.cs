namespace WasteClassifier.Cli.Commands;

/// <summary>Bad arguments or missing inputs: reported on stderr with exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
