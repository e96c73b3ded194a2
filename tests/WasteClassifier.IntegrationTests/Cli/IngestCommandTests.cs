using System.Diagnostics;
using System.Text.Json.Nodes;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Cli;
using WasteClassifier.Cli.Commands;
using WasteClassifier.Core;
using WasteClassifier.IntegrationTests.Ingestion;

namespace WasteClassifier.IntegrationTests.Cli;

/// <summary><c>wastectl ingest</c>'s command line: what it refuses before starting, and how it stops.</summary>
public sealed class IngestCommandTests
{
    [Theory]
    [InlineData("line 4, hall B")]
    [InlineData("hall-B/ligne-é")]
    [InlineData("-line-4")]
    [InlineData("line;4")]
    [InlineData("line-3\n")]
    public void Run_SourceTheApiRefuses_UsageErrorBeforeAnythingStarts(string source)
    {
        var folder = IngestionFixture.TempFolder("bad-source");
        // The API's own rule refuses it.
        Assert.NotNull(SourceNames.Validate(source));
        var command = new IngestCommand();
        var error = Assert.Throws<UsageException>(() => IngestCommand.Parse(new CommandArguments(["--source", source, "--watch", folder], command.ValueOptions, command.FlagOptions, takesPaths: true)));
        Assert.StartsWith("--source must be 1–128 characters: ASCII letters, digits and . _ : / -", error.Message);
        Assert.Contains(SourceName.Rule, command.Usage);
        Assert.Contains($"(got '{source}')", error.Message);
        // Exit code 2 (usage), before any request: the target here does not answer.
        Assert.Equal(CommandDispatcher.UsageError, CommandDispatcher.Run([command], ["ingest", "--target", "http://127.0.0.1:9", "--source", source, "--watch", folder]));
        Assert.Empty(Directory.EnumerateFileSystemEntries(folder, "*", SearchOption.AllDirectories));
    }

    [Theory]
    [InlineData("line-4")]
    [InlineData("hall_B:line.4/cam-2")]
    public void Parse_SourceTheApiTakes_Accepted(string source)
    {
        Assert.Null(SourceNames.Validate(source));
        var command = new IngestCommand();
        Assert.Equal(source, IngestCommand.Parse(new CommandArguments(["--source", source, "--watch", IngestionFixture.TempFolder("good-source")], command.ValueOptions, command.FlagOptions, takesPaths: true)).Source);
    }

    [Fact]
    public async Task Run_Sigterm_StopsLikeCtrlCWithTheSummaryAndItsJsonLine()
    {
        var folder = IngestionFixture.TempFolder("sigterm");
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "WasteClassifier.sln"))) root = Path.GetDirectoryName(root.TrimEnd(Path.DirectorySeparatorChar))!;
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(root, "src", "WasteClassifier.Cli", "bin", configuration, "net10.0", "wastectl.dll"));
        foreach (var arg in new[] { "ingest", "--target", "http://127.0.0.1:9", "--source", "sigterm", "--watch", folder }) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = new List<string>();
        var started = new TaskCompletionSource();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (stderr) stderr.Add(e.Data);
            if (e.Data.Contains("ingesting ", StringComparison.Ordinal)) started.TrySetResult();
        };
        process.BeginErrorReadLine();
        try
        {
            await started.Task.WaitAsync(TimeSpan.FromSeconds(60));
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString()])) await kill!.WaitForExitAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            if (!process.HasExited) process.Kill();
        }

        Assert.Equal(0, process.ExitCode);
        var summary = JsonNode.Parse((await stdout).Trim())!;
        Assert.Equal(0, summary["sent"]!.GetValue<int>());
        Assert.Null(summary["error"]);
        lock (stderr) Assert.Contains(stderr, l => l.Contains("done: 0 sent,", StringComparison.Ordinal));
    }
}
