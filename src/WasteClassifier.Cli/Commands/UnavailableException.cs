namespace WasteClassifier.Cli.Commands;

/// <summary>
/// A server the command needs (the target, the broker) cannot be reached or is not ready: exit code 2 like a usage error,
/// but without the line pointing at --help, which the arguments were not at fault for.
/// </summary>
public sealed class UnavailableException(string message) : Exception(message);
