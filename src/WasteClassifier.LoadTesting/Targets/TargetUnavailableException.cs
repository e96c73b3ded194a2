namespace WasteClassifier.LoadTesting.Targets;

/// <summary>The target (the API, or queue mode's broker) cannot be reached before the load: nothing was sent.</summary>
public sealed class TargetUnavailableException(string message) : Exception(message);
