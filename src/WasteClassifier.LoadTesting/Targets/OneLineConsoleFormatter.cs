using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace WasteClassifier.LoadTesting.Targets;

/// <summary>
/// A load test's console logs, one line each: the exception's type and message, never its stack. MassTransit printed a
/// multi-KB stack on every retry of a broker that did not answer, burying the run's own lines.
/// </summary>
internal sealed class OneLineConsoleFormatter() : ConsoleFormatter(Name)
{
    public new const string Name = "loadtest-one-line";

    public override void Write<TState>(in LogEntry<TState> logEntry, IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        var message = logEntry.Formatter(logEntry.State, null);
        if (string.IsNullOrEmpty(message) && logEntry.Exception is null) return;
        textWriter.Write($"{logEntry.LogLevel.ToString().ToLowerInvariant()}: {logEntry.Category}: {message.ReplaceLineEndings(" ")}");
        if (logEntry.Exception is { } e) textWriter.Write($" ({e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")})");
        textWriter.WriteLine();
    }
}
