using WasteClassifier.Cli.Commands;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Cli;

/// <summary>Picks the verb (one or more words, longest match first), parses its options and maps failures to exit codes.</summary>
internal static class CommandDispatcher
{
    public const int UsageError = 2;

    public static int Run(IReadOnlyList<ICommand> commands, string[] args)
    {
        if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
        {
            Console.Out.WriteLine(Overview(commands));
            return args.Length == 0 ? UsageError : 0;
        }

        var command = commands
            .OrderByDescending(c => c.Name.Split(' ').Length)
            .FirstOrDefault(c => args.Take(c.Name.Split(' ').Length).SequenceEqual(c.Name.Split(' ')));
        if (command is null) return Fail($"unknown verb '{args[0]}'\n\n{Overview(commands)}");

        try
        {
            var arguments = new CommandArguments(args.Skip(command.Name.Split(' ').Length), command.ValueOptions, command.FlagOptions, command.TakesPaths);
            if (!arguments.Help) return command.Run(arguments);
            Console.Out.WriteLine(command.Usage);
            return 0;
        }
        catch (UsageException e)
        {
            // One line pointing at the help: the whole of it (35 lines for loadtest) buried the message.
            return Fail($"{e.Message}\nsee wastectl {command.Name} --help");
        }
        catch (Exception e) when (e is UnavailableException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException)
        {
            return Fail(e.Message);
        }
        catch (Exception e) when (IsServerFailure(e))
        {
            // A database or server that cannot be reached or used: its own words say what to fix; a stack trace would bury them.
            Console.Error.WriteLine($"wastectl {command.Name} failed: {Messages(e)}");
            return 1;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"wastectl {command.Name} failed: {e}");
            return 1;
        }
    }

    // A migration lock held past its deadline too: its message names the holder and the setting, which a stack trace buried.
    private static bool IsServerFailure(Exception e) =>
        Chain(e).Any(x => x is System.Data.Common.DbException or System.Net.Sockets.SocketException or MigrationLockTimeoutException);

    /// <summary>The exception's message and its inner ones', on one line.</summary>
    private static string Messages(Exception e) =>
        string.Join(": ", Chain(e).Select(x => x.Message.ReplaceLineEndings(" ").Trim().TrimEnd('.')).Distinct());

    private static IEnumerable<Exception> Chain(Exception? e)
    {
        for (; e is not null; e = e.InnerException) yield return e;
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"wastectl: {message}");
        return UsageError;
    }

    private static string Overview(IEnumerable<ICommand> commands) =>
        "usage: wastectl <verb> [options]   (wastectl <verb> --help for a verb's options)\n\nverbs:\n" +
        string.Join("\n", commands.Select(c => $"  {c.Name,-16}{c.Summary}"));
}
