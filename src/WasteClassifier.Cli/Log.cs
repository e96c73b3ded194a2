namespace WasteClassifier.Cli;

/// <summary>Progress goes to stderr so stdout stays clean JSON.</summary>
internal static class Log
{
    public static void Info(string message) => Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {message}");
}
