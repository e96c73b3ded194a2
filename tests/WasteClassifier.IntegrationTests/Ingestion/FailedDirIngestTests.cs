using System.Text.Json;
using System.Text.Json.Nodes;
using WasteClassifier.Cli.Commands;
using WasteClassifier.Cli.Ingest;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Ingestion;

/// <summary><c>wastectl ingest --failed-dir</c> against the embedded API: files refused for good are moved aside with why.</summary>
[Collection(IngestionCollection.Name)]
public sealed class FailedDirIngestTests(IngestionFixture fixture)
{
    private static IngestOptions Options(string source, string folder, string? failed, string? archive = null) => new()
    {
        Source = source,
        WatchDirectory = folder,
        Once = true,
        Recursive = true,
        StateFile = Path.Combine(folder, ".state.jsonl"),
        Settle = TimeSpan.FromMilliseconds(200),
        IncompleteAfter = TimeSpan.FromSeconds(1),
        BatchWait = TimeSpan.FromSeconds(30),
        ArchiveDirectory = archive,
        FailedDirectory = failed,
    };

    [Fact]
    public async Task Ingest_RecursiveWithFailedDirAndArchive_RefusedFilesMovedWithTheirReasonAcceptedArchivedNothingSentAgain()
    {
        const string source = "ingest-failed-dir";
        var folder = IngestionFixture.TempFolder("failed-dir");
        // Both inside the watched folder: what is moved there is not found again by the recursive scan.
        var (failed, archive) = (Path.Combine(folder, "failed"), Path.Combine(folder, "sent"));
        Directory.CreateDirectory(Path.Combine(folder, "sub"));
        var good = Dataset.Sample(4).TakeLast(2).ToList();
        File.Copy(good[0].Path, Path.Combine(folder, "good.jpg"));
        File.Copy(good[1].Path, Path.Combine(folder, "sub", "good.jpg"));
        await File.WriteAllTextAsync(Path.Combine(folder, "notes.jpg"), "this is not a photograph");
        await File.WriteAllTextAsync(Path.Combine(folder, "sub", "bad.jpg"), "neither is this");
        await File.WriteAllBytesAsync(Path.Combine(folder, "empty.jpg"), []);
        // A name already taken in the failed-files folder (by an earlier run's file, or its sidecar): never overwritten.
        Directory.CreateDirectory(Path.Combine(failed, "sub"));
        await File.WriteAllTextAsync(Path.Combine(failed, "notes.jpg"), "an earlier notes.jpg");
        await File.WriteAllTextAsync(Path.Combine(failed, "sub", "bad.jpg" + Ingester.ErrorSidecarSuffix), "{}");

        var summary = await new Ingester(Options(source, folder, failed, archive), fixture.Client.Http).RunAsync(CancellationToken.None);

        Assert.Null(summary.FatalError);
        Assert.Equal((2, 3), (summary.Sent, summary.Refused));
        Assert.Equal(0, IngestCommand.ExitCode(summary));
        // The camera folder drained but for the state file and the empty file: wastectl's own verdict on it is a guess about a
        // file a writer may still be writing, so it stays where the writer left it.
        Assert.Equal([".state.jsonl", "empty.jpg"], Directory.EnumerateFiles(folder).Select(Path.GetFileName).Order());
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(folder, "sub")));
        Assert.True(File.Exists(Path.Combine(archive, "good.jpg")) && File.Exists(Path.Combine(archive, "sub", "good.jpg")));
        Assert.Equal("an earlier notes.jpg", await File.ReadAllTextAsync(Path.Combine(failed, "notes.jpg")));
        Assert.Equal("{}", await File.ReadAllTextAsync(Path.Combine(failed, "sub", "bad.jpg" + Ingester.ErrorSidecarSuffix)));
        Assert.Equal("this is not a photograph", await File.ReadAllTextAsync(Path.Combine(failed, "notes-1.jpg")));
        Assert.Equal("neither is this", await File.ReadAllTextAsync(Path.Combine(failed, "sub", "bad-1.jpg")));
        Assert.False(File.Exists(Path.Combine(failed, "empty.jpg")));

        // Refused by the API in a request whose other files it accepted (202), with its reason.
        var notes = Sidecar(Path.Combine(failed, "notes-1.jpg"));
        Assert.Equal((Path.Combine(folder, "notes.jpg"), source, 24L), (notes["file"]!.GetValue<string>(), notes["source"]!.GetValue<string>(), notes["size"]!.GetValue<long>()));
        Assert.Equal((202, "not_an_image"), (notes["status"]!.GetValue<int>(), notes["error"]!.GetValue<string>()));
        Assert.False(string.IsNullOrEmpty(notes["message"]!.GetValue<string>()));
        Assert.InRange(DateTime.Parse(notes["time"]!.GetValue<string>(), null, System.Globalization.DateTimeStyles.RoundtripKind), DateTime.UtcNow.AddMinutes(-5), DateTime.UtcNow);
        Assert.Equal("not_an_image", Sidecar(Path.Combine(failed, "sub", "bad-1.jpg"))["error"]!.GetValue<string>());

        // Nothing is sent again, and nothing in either folder is taken for a new frame.
        var again = await new Ingester(Options(source, folder, failed, archive), fixture.Client.Http).RunAsync(CancellationToken.None);
        Assert.Equal((0, 0, 1), (again.Sent, again.Refused, again.Skipped)); // the empty file, answered before
        Assert.Equal(6, Directory.EnumerateFiles(failed, "*", SearchOption.AllDirectories).Count());
    }

    [Fact]
    public async Task Ingest_RefusalRecordedBeforeAStopThatCameAheadOfItsMove_MovedByTheNextRunWithTheRecordedStatus()
    {
        const string source = "ingest-failed-dir-later";
        var folder = IngestionFixture.TempFolder("failed-dir-later");
        var failed = IngestionFixture.TempFolder("failed-dir-later-out");
        await File.WriteAllTextAsync(Path.Combine(folder, "notes.jpg"), "this is not a photograph");
        // A run that records the refusal but does not move it: as one stopped between the two.
        var first = await new Ingester(Options(source, folder, failed: null), fixture.Client.Http).RunAsync(CancellationToken.None);
        Assert.Equal((0, 1), (first.Sent, first.Refused));
        Assert.True(File.Exists(Path.Combine(folder, "notes.jpg")));

        var second = await new Ingester(Options(source, folder, failed), fixture.Client.Http).RunAsync(CancellationToken.None);

        // Not sent again: moved with the answer the state file holds (a request of refused files only is a 400).
        Assert.Equal((0, 0, 1), (second.Sent, second.Refused, second.Skipped));
        Assert.False(File.Exists(Path.Combine(folder, "notes.jpg")));
        var why = Sidecar(Path.Combine(failed, "notes.jpg"));
        Assert.Equal((400, "not_an_image"), (why["status"]!.GetValue<int>(), why["error"]!.GetValue<string>()));
        Assert.Contains(File.ReadLines(Path.Combine(folder, ".state.jsonl")), l => l.StartsWith("{\"op\":\"cleaned\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Ingest_RequestRefusedAsAWhole_FilesStayWhereTheyAre()
    {
        // The API refuses the source (400 invalid_source): a problem of the configuration, not of the files.
        var folder = IngestionFixture.TempFolder("failed-dir-whole");
        var failed = IngestionFixture.TempFolder("failed-dir-whole-out");
        File.Copy(Dataset.Sample(4)[^3].Path, Path.Combine(folder, "good.jpg"));
        await File.WriteAllTextAsync(Path.Combine(folder, "notes.jpg"), "this is not a photograph");

        var summary = await new Ingester(Options("line 4, hall B", folder, failed), fixture.Client.Http).RunAsync(CancellationToken.None);

        Assert.Contains("invalid_source", summary.FatalError);
        Assert.Equal(1, IngestCommand.ExitCode(summary));
        Assert.True(File.Exists(Path.Combine(folder, "good.jpg")) && File.Exists(Path.Combine(folder, "notes.jpg")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(failed));
    }

    [Fact]
    public void Parse_FailedDir_FullPathAndNotTheArchive()
    {
        var folder = IngestionFixture.TempFolder("failed-dir-parse");
        var command = new IngestCommand();
        CommandArguments Args(params string[] more) => new(["--source", "line-4", "--watch", folder, .. more], command.ValueOptions, command.FlagOptions, takesPaths: true);

        Assert.Equal(Path.GetFullPath("failed"), IngestCommand.Parse(Args("--failed-dir", "failed")).FailedDirectory);
        Assert.Null(IngestCommand.Parse(Args()).FailedDirectory);
        Assert.Equal("--failed-dir and --archive must be different folders, neither inside the other",
            Assert.Throws<UsageException>(() => IngestCommand.Parse(Args("--failed-dir", "out", "--archive", "out/"))).Message);
        Assert.StartsWith("--failed-dir must not be the watched folder",
            Assert.Throws<UsageException>(() => IngestCommand.Parse(Args("--failed-dir", folder))).Message);
        Assert.Contains("--failed-dir DIR", command.Usage);
    }

    [Fact]
    public void Parse_FailedDirOrArchiveHoldingWhatIsSentOrNestedInTheOther_UsageErrorNamingTheOption()
    {
        var root = IngestionFixture.TempFolder("failed-dir-around");
        var (cam, watch) = (Path.Combine(root, "cam"), Path.Combine(root, "cam", "line-4"));
        Directory.CreateDirectory(watch);
        var file = Path.Combine(cam, "frame.jpg");
        File.WriteAllText(file, "x");
        var command = new IngestCommand();
        CommandArguments Args(params string[] more) => new(["--source", "line-4", .. more], command.ValueOptions, command.FlagOptions, takesPaths: true);
        string Refused(params string[] more) => Assert.Throws<UsageException>(() => IngestCommand.Parse(Args(more))).Message;

        // A folder above the watched one (written relative, with a trailing separator: compared as full paths), or the folder itself.
        Assert.Equal("--failed-dir must not be the watched folder or a folder above it (its files would all be skipped)",
            Refused("--watch", watch, "--failed-dir", Path.GetRelativePath(Environment.CurrentDirectory, root) + "/"));
        Assert.StartsWith("--archive must not be the watched folder or a folder above it", Refused("--watch", watch, "--archive", cam));
        Assert.StartsWith("--archive must not be the watched folder or a folder above it", Refused("--watch", watch, "--archive", watch));
        // Files given: a file, a folder, a glob whose folder lies in it.
        Assert.Equal($"--failed-dir must not hold the files to send ('{file}' is in {root}: its files would all be skipped)", Refused(file, "--failed-dir", root));
        Assert.StartsWith("--archive must not hold the files to send", Refused(cam, "--archive", cam));
        Assert.StartsWith("--failed-dir must not hold the files to send", Refused(Path.Combine(cam, "**", "*.jpg"), "--failed-dir", cam));
        // One inside the other, either way.
        Assert.Equal("--failed-dir and --archive must be different folders, neither inside the other",
            Refused("--watch", watch, "--archive", Path.Combine(root, "sent"), "--failed-dir", Path.Combine(root, "sent", "failed")));
        Assert.Equal("--failed-dir and --archive must be different folders, neither inside the other",
            Refused("--watch", watch, "--failed-dir", Path.Combine(root, "failed"), "--archive", Path.Combine(root, "failed", "sent")));

        // Still fine: both inside the watched folder (skipped by its scan), a sibling whose name starts alike, a glob whose
        // folder holds the failed-files folder.
        Assert.NotNull(IngestCommand.Parse(Args("--watch", watch, "--failed-dir", Path.Combine(watch, "failed"), "--archive", Path.Combine(watch, "sent"))).ArchiveDirectory);
        Assert.NotNull(IngestCommand.Parse(Args("--watch", watch, "--failed-dir", Path.Combine(cam, "line"))).FailedDirectory);
        Assert.NotNull(IngestCommand.Parse(Args(Path.Combine(root, "**", "*.jpg"), "--failed-dir", Path.Combine(root, "failed"))).FailedDirectory);
    }

    [Fact]
    public async Task Ingest_OrphanSidecarOfAStopBetweenItsWriteAndTheMove_NextRunUsesItsSlot()
    {
        const string source = "ingest-failed-dir-orphan";
        var folder = IngestionFixture.TempFolder("failed-dir-orphan");
        var failed = IngestionFixture.TempFolder("failed-dir-orphan-out");
        var notes = Path.Combine(folder, "notes.jpg");
        await File.WriteAllTextAsync(notes, "this is not a photograph");
        var first = await new Ingester(Options(source, folder, failed: null), fixture.Client.Http).RunAsync(CancellationToken.None);
        Assert.Equal(1, first.Refused);
        // As a run leaves it that stopped after writing the sidecar and before moving the file: the sidecar alone.
        await File.WriteAllTextAsync(Path.Combine(failed, "notes.jpg" + Ingester.ErrorSidecarSuffix), $$"""{ "file": "{{notes}}", "size": 24, "error": "not_an_image" }""");

        var second = await new Ingester(Options(source, folder, failed), fixture.Client.Http).RunAsync(CancellationToken.None);

        Assert.Equal((0, 0, 1), (second.Sent, second.Refused, second.Skipped));
        Assert.False(File.Exists(notes));
        // One file and one sidecar, the one written now.
        Assert.Equal(["notes.jpg", "notes.jpg" + Ingester.ErrorSidecarSuffix], Directory.EnumerateFiles(failed).Select(Path.GetFileName).Order());
        Assert.Equal(400, Sidecar(Path.Combine(failed, "notes.jpg"))["status"]!.GetValue<int>());
    }

    [Fact]
    public void MoveAway_SidecarWithoutItsFileNamingThePathButAnotherSize_KeptAndTheFileTakesTheNextName()
    {
        var folder = IngestionFixture.TempFolder("failed-dir-other-size");
        var failed = IngestionFixture.TempFolder("failed-dir-other-size-out");
        var notes = Path.Combine(folder, "notes.jpg");
        File.WriteAllText(notes, "this is not a photograph");
        // Left by another file of that path (99 bytes) whose file was taken away: it explains that file, not this one.
        var old = $$"""{ "file": "{{notes}}", "size": 99, "error": "not_an_image" }""";
        File.WriteAllText(Path.Combine(failed, "notes.jpg" + Ingester.ErrorSidecarSuffix), old);
        var ingester = new Ingester(Options("other-size", folder, failed), fixture.Client.Http);

        Assert.True(ingester.MoveAway(IngestFile.Stat(notes)!, "move to the failed-files folder", failed, JsonSerializer.SerializeToUtf8Bytes(new { file = notes, size = 24 })));

        Assert.Equal(old, File.ReadAllText(Path.Combine(failed, "notes.jpg" + Ingester.ErrorSidecarSuffix)));
        Assert.Equal(["notes-1.jpg", "notes-1.jpg" + Ingester.ErrorSidecarSuffix, "notes.jpg" + Ingester.ErrorSidecarSuffix],
            Directory.EnumerateFiles(failed).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task MoveAway_TwoFilesOfOneNameAtOnce_EachMovedWithItsOwnSidecar()
    {
        // Files given (no watched folder) go under their names: two folders' x.jpg refused in concurrent batches both
        // aim at failed/x.jpg. Many rounds, as the window between choosing the name and writing the sidecar is short.
        var failed = IngestionFixture.TempFolder("failed-dir-race-out");
        var folders = new[] { IngestionFixture.TempFolder("failed-dir-race-a"), IngestionFixture.TempFolder("failed-dir-race-b") };
        var ingester = new Ingester(new IngestOptions { Source = "race", StateFile = Path.Combine(folders[0], ".state.jsonl"), FailedDirectory = failed },
            fixture.Client.Http);
        for (var round = 0; round < 2000; round++)
        {
            var files = folders.Select(folder =>
            {
                var path = Path.Combine(folder, $"x{round}.jpg");
                File.WriteAllText(path, folder); // the file says where it came from
                return IngestFile.Stat(path)!;
            }).ToArray();
            using var start = new Barrier(files.Length);
            var moved = await Task.WhenAll(files.Select(f => Task.Run(() =>
            {
                start.SignalAndWait();
                return ingester.MoveAway(f, "move to the failed-files folder", failed, JsonSerializer.SerializeToUtf8Bytes(new { file = f.Path }));
            })));
            Assert.True(moved.All(m => m), $"round {round}: a move failed");
        }

        var movedFiles = Directory.EnumerateFiles(failed).Where(f => !f.EndsWith(Ingester.ErrorSidecarSuffix, StringComparison.Ordinal)).ToList();
        Assert.Equal(2 * 2000, movedFiles.Count);
        // Each moved file has a sidecar, and it names that file (from the folder the file's content names).
        Assert.All(movedFiles, f =>
        {
            Assert.True(File.Exists(f + Ingester.ErrorSidecarSuffix), $"{f} has no sidecar");
            Assert.Equal(File.ReadAllText(f), Path.GetDirectoryName(Sidecar(f)["file"]!.GetValue<string>()));
        });
    }

    [Fact]
    public void MoveAway_FailsSucceedsAndFailsAgainOrForANewVersion_LoggedEachTime()
    {
        var folder = IngestionFixture.TempFolder("failed-dir-relog");
        var archive = IngestionFixture.TempFolder("failed-dir-relog-out");
        Directory.CreateDirectory(Path.Combine(folder, "sub"));
        var file = Path.Combine(folder, "sub", "bad.jpg");
        File.WriteAllText(file, "x");
        var log = new List<string>();
        var ingester = new Ingester(Options("relog", folder, failed: null, archive), fixture.Client.Http, log.Add);
        // A file where the archive's folder must go: the archive fails.
        var blocker = Path.Combine(archive, "sub");
        File.WriteAllText(blocker, "in the way");
        var version = IngestFile.Stat(file)!;

        Assert.False(ingester.MoveAway(version, "archive", archive, null));
        Assert.False(ingester.MoveAway(version, "archive", archive, null)); // the same version again: not logged again
        File.Delete(blocker);
        Assert.True(ingester.MoveAway(version, "archive", archive, null));
        // Moved back (the same size and time: the same version) and the archive blocked again: a new outage, logged.
        File.Move(Path.Combine(archive, "sub", "bad.jpg"), file);
        Directory.Delete(Path.Combine(archive, "sub"));
        File.WriteAllText(blocker, "in the way");
        Assert.Equal(version, IngestFile.Stat(file));
        Assert.False(ingester.MoveAway(version, "archive", archive, null));
        // A new version of the path: logged too.
        File.WriteAllText(file, "xy");
        Assert.False(ingester.MoveAway(IngestFile.Stat(file)!, "archive", archive, null));

        Assert.Equal(3, log.Count(l => l.StartsWith($"could not archive {file}", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Ingest_WatchingWhileTheMoveKeepsFailing_LoggedOncePerFile()
    {
        const string source = "ingest-failed-dir-stuck";
        var folder = IngestionFixture.TempFolder("failed-dir-stuck");
        var failed = IngestionFixture.TempFolder("failed-dir-stuck-out");
        Directory.CreateDirectory(Path.Combine(folder, "sub"));
        await File.WriteAllTextAsync(Path.Combine(folder, "sub", "bad.jpg"), "this is not a photograph");
        await File.WriteAllTextAsync(Path.Combine(folder, "sub", "worse.jpg"), "neither is this");
        // A file where the folder of the moved files must go: every move fails (as a folder not writable, even for root).
        await File.WriteAllTextAsync(Path.Combine(failed, "sub"), "in the way");
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var options = Options(source, folder, failed);

        // Watching, with a rescan every 100 ms: each finds both files again and tries their move again.
        var run = new Ingester(new IngestOptions
        {
            Source = source,
            WatchDirectory = folder,
            Recursive = true,
            StateFile = options.StateFile,
            Settle = TimeSpan.FromMilliseconds(100),
            BatchWait = TimeSpan.FromMilliseconds(50),
            Rescan = TimeSpan.FromMilliseconds(100),
            FailedDirectory = failed,
        }, fixture.Client.Http, log.Enqueue).RunAsync(stop.Token);
        // Stopped once both moves have failed, however long a loaded machine takes to send the files and have them refused
        // (a fixed 4 s run ended before that on a slow API), then after 2 s more of rescans that try both moves again.
        static List<string> Moves(IEnumerable<string> lines) =>
            lines.Where(l => l.StartsWith("could not move to the failed-files folder", StringComparison.Ordinal)).ToList();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Moves(log).Count < 2 && DateTime.UtcNow < deadline && !run.IsCompleted) await Task.Delay(50);
        await Task.Delay(TimeSpan.FromSeconds(2));
        await stop.CancelAsync();
        var summary = await run;

        Assert.Equal(2, summary.Refused);
        var moves = Moves(log);
        Assert.True(moves.Count == 2, string.Join("\n", moves));
        Assert.All(moves, m => Assert.Contains("it stays in place (tried again at each rescan, not logged again)", m));
        Assert.True(File.Exists(Path.Combine(folder, "sub", "bad.jpg")) && File.Exists(Path.Combine(folder, "sub", "worse.jpg")));
        Assert.Equal(["sub"], Directory.EnumerateFileSystemEntries(failed).Select(Path.GetFileName));
    }

    [Fact]
    public async Task Ingest_FileOverTheFileLimit_MovedWithItsFileTooLargeRefusal()
    {
        const string source = "ingest-failed-dir-big-file";
        var folder = IngestionFixture.TempFolder("failed-dir-big-file");
        var failed = IngestionFixture.TempFolder("failed-dir-big-file-out");
        // Over the fixture's Uploads:MaxFileBytes (2 MiB), well under its request limit.
        await File.WriteAllBytesAsync(Path.Combine(folder, "big.jpg"), new byte[2 * 1024 * 1024 + 1]);

        var summary = await new Ingester(Options(source, folder, failed), fixture.Client.Http).RunAsync(CancellationToken.None);

        Assert.Equal("file_too_large", Assert.Single(summary.Failures).Error);
        Assert.False(File.Exists(Path.Combine(folder, "big.jpg")));
        var why = Sidecar(Path.Combine(failed, "big.jpg"));
        Assert.Equal((413, "file_too_large"), (why["status"]!.GetValue<int>(), why["error"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Ingest_FileOverTheRequestLimitAlone_MovedWithItsRequestTooLargeRefusal()
    {
        const string source = "ingest-failed-dir-big-request";
        var folder = IngestionFixture.TempFolder("failed-dir-big-request");
        var failed = IngestionFixture.TempFolder("failed-dir-big-request-out");
        await File.WriteAllBytesAsync(Path.Combine(folder, "big.jpg"), new byte[100_000]);
        // The same deployment with a request limit below that one file.
        await using var api = fixture.AnotherProcess(new Dictionary<string, string?> { ["Uploads:MaxRequestBytes"] = "65536" });
        using var http = api.CreateClient();

        var summary = await new Ingester(Options(source, folder, failed), http).RunAsync(CancellationToken.None);

        Assert.True(summary.FatalError is null, summary.FatalError);
        Assert.Equal("request_too_large", Assert.Single(summary.Failures).Error);
        Assert.False(File.Exists(Path.Combine(folder, "big.jpg")));
        var why = Sidecar(Path.Combine(failed, "big.jpg"));
        Assert.Equal((413, "request_too_large"), (why["status"]!.GetValue<int>(), why["error"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Ingest_KeyAndContentKeyBothHeldByOtherRequests_MovedWithItsKeyReusedRefusal()
    {
        const string source = "ingest-failed-dir-key-reused";
        var folder = IngestionFixture.TempFolder("failed-dir-key-reused");
        var failed = IngestionFixture.TempFolder("failed-dir-key-reused-out");
        var samples = Dataset.Manifest.Skip(2400).Take(3).Select(s => s.Path).ToList();
        var frame = Path.Combine(folder, "frame.jpg");
        File.Copy(samples[0], frame);
        var file = IngestFile.Stat(frame)!;
        // Another client took both keys the ingester can send this file under: its batch's, then its content's.
        foreach (var (key, other) in new[]
                 {
                     (IngestClient.KeyFor(source, [file]), samples[1]),
                     (IngestClient.ContentKeyFor(source, [new IngestClient.Part(file, await File.ReadAllBytesAsync(frame))]), samples[2]),
                 })
        {
            var (response, body) = await fixture.Client.SubmitAsync([("other.jpg", await File.ReadAllBytesAsync(other))], source, key);
            Assert.True(response.StatusCode == System.Net.HttpStatusCode.Accepted, body.ToJsonString());
        }

        var summary = await new Ingester(Options(source, folder, failed), fixture.Client.Http).RunAsync(CancellationToken.None);

        Assert.True(summary.FatalError is null, summary.FatalError);
        Assert.Equal(IngestClient.KeyReused, Assert.Single(summary.Failures).Error);
        Assert.False(File.Exists(frame));
        var why = Sidecar(Path.Combine(failed, "frame.jpg"));
        Assert.Equal((422, IngestClient.KeyReused), (why["status"]!.GetValue<int>(), why["error"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Ingest_FilesGivenWithFailedDir_RefusedOnesMovedUnderTheirNamesAcceptedOnesStay()
    {
        const string source = "ingest-failed-dir-files";
        var (a, b) = (IngestionFixture.TempFolder("failed-dir-files-a"), IngestionFixture.TempFolder("failed-dir-files-b"));
        var failed = IngestionFixture.TempFolder("failed-dir-files-out");
        var good = Path.Combine(a, "good.jpg");
        File.Copy(Dataset.Manifest.Skip(2410).First().Path, good);
        // Two refused files of one name, from two folders.
        await File.WriteAllTextAsync(Path.Combine(a, "notes.jpg"), "this is not a photograph");
        await File.WriteAllTextAsync(Path.Combine(b, "notes.jpg"), "neither is this");
        var options = Options(source, a, failed);

        var summary = await new Ingester(new IngestOptions
        {
            Source = source,
            Paths = [Path.Combine(a, "*.jpg"), Path.Combine(b, "notes.jpg")],
            Once = true,
            StateFile = options.StateFile,
            Settle = options.Settle,
            BatchWait = options.BatchWait,
            FailedDirectory = failed,
        }, fixture.Client.Http).RunAsync(CancellationToken.None);

        Assert.Equal((1, 2), (summary.Sent, summary.Refused));
        Assert.True(File.Exists(good));
        Assert.False(File.Exists(Path.Combine(a, "notes.jpg")) || File.Exists(Path.Combine(b, "notes.jpg")));
        // Under their names (no folder: files given have none under a watched folder), the second with -1.
        Assert.Equal(["notes-1.jpg", "notes-1.jpg" + Ingester.ErrorSidecarSuffix, "notes.jpg", "notes.jpg" + Ingester.ErrorSidecarSuffix],
            Directory.EnumerateFiles(failed).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        var sidecars = new[] { "notes.jpg", "notes-1.jpg" }.Select(n => Sidecar(Path.Combine(failed, n))["file"]!.GetValue<string>()).Order(StringComparer.Ordinal);
        Assert.Equal([Path.Combine(a, "notes.jpg"), Path.Combine(b, "notes.jpg")], sidecars);
    }

    private static JsonNode Sidecar(string file) => JsonNode.Parse(File.ReadAllText(file + Ingester.ErrorSidecarSuffix))!;
}
