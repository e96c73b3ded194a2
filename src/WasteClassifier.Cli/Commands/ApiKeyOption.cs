namespace WasteClassifier.Cli.Commands;

/// <summary>
/// The API key of a verb that calls the API: <c>--api-key-file PATH</c> (its first line), <c>--api-key KEY</c>, or the
/// <c>WASTECTL_API_KEY</c> environment variable. The option's value shows in the process list; the file and the variable do not.
/// </summary>
public static class ApiKeyOption
{
    public const string Option = "--api-key";
    public const string FileOption = "--api-key-file";
    public const string Variable = "WASTECTL_API_KEY";

    /// <summary>The key, or null for none; a usage error (exit 2) for both options, or a file that is missing, unreadable or empty.</summary>
    public static string? Resolve(CommandArguments arguments)
    {
        var key = arguments.Optional(Option);
        var file = arguments.Optional(FileOption);
        if (key is not null && file is not null) throw new UsageException($"give {Option} or {FileOption}, not both");
        if (file is not null) return Read(file);
        return key ?? Environment.GetEnvironmentVariable(Variable);
    }

    private static string Read(string path)
    {
        string? first;
        try
        {
            first = File.ReadLines(path).FirstOrDefault();
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new UsageException($"{FileOption} not found: {path}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{FileOption} {path} cannot be read: {e.Message}");
        }
        return string.IsNullOrWhiteSpace(first)
            ? throw new UsageException($"{FileOption} {path} is empty: its first line must be the key")
            : first.Trim();
    }
}
