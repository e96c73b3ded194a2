using WasteClassifier.Cli.Ingest;

namespace WasteClassifier.IntegrationTests.Ingestion;

/// <summary><c>wastectl ingest</c>'s state file: what it keeps across restarts and what it lets go.</summary>
public sealed class IngestStateTests
{
    private static IngestFile Frame(string folder, string name, bool exists)
    {
        var path = Path.Combine(folder, name);
        if (exists) File.WriteAllText(path, name);
        return new IngestFile(path, 100, 638000000000000000);
    }

    private static IngestState.EntryFile Accepted(IngestFile f) => new(f.Path, f.Size, f.MtimeTicks, IngestState.Accepted, "id-" + Path.GetFileName(f.Path));

    [Fact]
    public async Task Open_AnswersForFilesTheIngesterCleanedUp_DroppedAndWhatResendingNeedsKept()
    {
        var folder = IngestionFixture.TempFolder("state-compaction");
        var path = Path.Combine(folder, ".state.jsonl");
        var cleaned = Enumerable.Range(0, 50).Select(i => Frame(folder, $"cleaned-{i}.jpg", exists: false)).ToList();
        var here = Frame(folder, "here.jpg", exists: true);
        // Gone, but not by the ingester's hand (moved by someone, or its folder unreachable): its answer is kept.
        var elsewhere = Frame(folder, "elsewhere.jpg", exists: false);
        var pending = Frame(folder, "pending.jpg", exists: false);
        using (var state = IngestState.Open(path))
        {
            foreach (var f in cleaned)
            {
                await state.RecordSendAsync("key-" + f.Path, [f], CancellationToken.None);
                await state.RecordDoneAsync("key-" + f.Path, [Accepted(f)], CancellationToken.None);
                await state.RecordCleanedAsync([f], CancellationToken.None);
            }
            foreach (var f in new[] { here, elsewhere })
            {
                await state.RecordSendAsync("key-" + f.Path, [f], CancellationToken.None);
                await state.RecordDoneAsync("key-" + f.Path, [Accepted(f)], CancellationToken.None);
            }
            // Sent, never answered: kept with its key whether its file exists or not (the API may hold it).
            await state.RecordSendAsync("key-pending", [pending], CancellationToken.None);
        }
        var before = new FileInfo(path).Length;

        using (var state = IngestState.Open(path))
        {
            Assert.True(new FileInfo(path).Length < before / 10, $"{new FileInfo(path).Length} bytes of {before}");
            Assert.Equal(2, state.AnsweredCount);
            Assert.Equal("id-here.jpg", state.Answer(here)?.Id);
            Assert.Equal("id-elsewhere.jpg", state.Answer(elsewhere)?.Id);
            Assert.Null(state.Answer(cleaned[0]));
            var (key, files) = Assert.Single(state.Unanswered);
            Assert.Equal(("key-pending", pending), (key, Assert.Single(files)));
        }
        // A rewritten file reads back the same.
        using (var state = IngestState.Open(path))
        {
            Assert.Equal("id-here.jpg", state.Answer(here)?.Id);
            Assert.Equal("id-elsewhere.jpg", state.Answer(elsewhere)?.Id);
            Assert.Equal("key-pending", Assert.Single(state.Unanswered).Key);
        }
        Assert.Equal([".state.jsonl", "here.jpg"], Directory.EnumerateFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Open_WhileTheCameraFolderIsAway_EveryAnswerKeptAndNothingSentAgain()
    {
        var root = IngestionFixture.TempFolder("state-folder-away");
        var folder = Path.Combine(root, "camera");
        Directory.CreateDirectory(folder);
        var path = Path.Combine(root, "state.jsonl");
        var frames = Enumerable.Range(0, 2000).Select(i => Frame(folder, $"frame-{i}.jpg", exists: true)).ToList();
        using (var state = IngestState.Open(path))
        {
            foreach (var batch in frames.Chunk(16))
            {
                var key = "key-" + batch[0].Path;
                await state.RecordSendAsync(key, batch, CancellationToken.None);
                await state.RecordDoneAsync(key, batch.Select(Accepted).ToList(), CancellationToken.None);
            }
        }

        // An unmounted share, or a folder moved away for a while: its files cannot be looked up.
        Directory.Move(folder, folder + "-away");
        using (var state = IngestState.Open(path))
        {
            Assert.Equal(frames.Count, state.AnsweredCount);
        }
        Directory.Move(folder + "-away", folder);
        using (var state = IngestState.Open(path))
        {
            Assert.Equal(frames.Count, state.AnsweredCount);
            Assert.All(frames, f => Assert.Equal(IngestState.Accepted, state.Answer(f)?.Outcome));
        }
    }

    [Fact]
    public async Task Record_ManyAnswersForFilesThenArchived_FileRewrittenWhileRunning()
    {
        var folder = IngestionFixture.TempFolder("state-compaction-running");
        var path = Path.Combine(folder, ".state.jsonl");
        using var state = IngestState.Open(path, compactEvery: 20);
        for (var i = 0; i < 200; i++)
        {
            var f = Frame(folder, $"frame-{i}.jpg", exists: true);
            await state.RecordSendAsync($"key-{i}", [f], CancellationToken.None);
            await state.RecordDoneAsync($"key-{i}", [Accepted(f)], CancellationToken.None);
            File.Delete(f.Path); // archived
            await state.RecordCleanedAsync([f], CancellationToken.None);
        }

        Assert.InRange(File.ReadLines(path).Count(), 1, 25);
        Assert.InRange(state.AnsweredCount, 1, 25);
    }

    [Fact]
    public async Task Record_NothingToDropButSendRecords_FileNotRewritten()
    {
        var folder = IngestionFixture.TempFolder("state-nothing-to-drop");
        var path = Path.Combine(folder, ".state.jsonl");
        using var state = IngestState.Open(path, compactEvery: 20);
        for (var i = 0; i < 100; i++)
        {
            var f = Frame(folder, $"frame-{i}.jpg", exists: false);
            await state.RecordSendAsync($"key-{i}", [f], CancellationToken.None);
            await state.RecordDoneAsync($"key-{i}", [Accepted(f)], CancellationToken.None);
        }

        // No answer may go (nothing was archived or deleted): every record stays where it was written.
        Assert.Equal(200, File.ReadLines(path).Count());
        Assert.Equal(100, state.AnsweredCount);
    }

    [Fact]
    public async Task Record_FewNewAnswersAfterARewriteOfMany_NotRewrittenAgainUntilAsManyCame()
    {
        var folder = IngestionFixture.TempFolder("state-rewrite-amortised");
        var path = Path.Combine(folder, ".state.jsonl");
        var kept = Enumerable.Range(0, 640).Select(i => Frame(folder, $"kept-{i}.jpg", exists: false)).ToList();
        using (var state = IngestState.Open(path))
        {
            foreach (var batch in kept.Chunk(16))
            {
                await state.RecordSendAsync("key-" + batch[0].Path, batch, CancellationToken.None);
                await state.RecordDoneAsync("key-" + batch[0].Path, batch.Select(Accepted).ToList(), CancellationToken.None);
            }
            await state.RecordCleanedAsync([kept[0]], CancellationToken.None);
        }
        using (var state = IngestState.Open(path, compactEvery: 20))
        {
            Assert.Equal(3, File.ReadLines(path).Count()); // 639 answers, 256 to a record
            // 10 answers (30 records): far fewer than the 639 a rewrite writes again.
            for (var i = 0; i < 10; i++)
            {
                var f = Frame(folder, $"new-{i}.jpg", exists: false);
                await state.RecordSendAsync($"key-new-{i}", [f], CancellationToken.None);
                await state.RecordDoneAsync($"key-new-{i}", [Accepted(f)], CancellationToken.None);
                await state.RecordCleanedAsync([f], CancellationToken.None);
            }
            Assert.Equal(33, File.ReadLines(path).Count());
        }
    }

    [Fact]
    public async Task Open_RewriteFails_StartsAndAppendsToTheFileAsItIs()
    {
        var folder = IngestionFixture.TempFolder("state-rewrite-fails");
        var path = Path.Combine(folder, ".state.jsonl");
        var a = Frame(folder, "a.jpg", exists: false);
        var b = Frame(folder, "b.jpg", exists: false);
        using (var state = IngestState.Open(path))
        {
            await state.RecordDoneAsync("key-a", [Accepted(a)], CancellationToken.None);
            await state.RecordDoneAsync("key-b", [Accepted(b)], CancellationToken.None);
            await state.RecordCleanedAsync([a], CancellationToken.None);
        }
        // The rewrite's new file cannot be created (here: a folder in its place).
        Directory.CreateDirectory(path + ".compacting.tmp");
        var log = new List<string>();
        var c = Frame(folder, "c.jpg", exists: false);

        using (var state = IngestState.Open(path, log: log.Add))
        {
            Assert.Contains(log, l => l.StartsWith($"state file {path}: could not rewrite it", StringComparison.Ordinal));
            Assert.Equal("id-b.jpg", state.Answer(b)?.Id);
            await state.RecordDoneAsync("key-c", [Accepted(c)], CancellationToken.None);
        }
        Directory.Delete(path + ".compacting.tmp");
        using (var state = IngestState.Open(path))
        {
            Assert.Equal(("id-b.jpg", "id-c.jpg"), (state.Answer(b)?.Id, state.Answer(c)?.Id));
            Assert.Null(state.Answer(a));
        }
    }

    [Fact]
    public async Task Open_Rewritten_KeepsTheStateFilesMode()
    {
        if (OperatingSystem.IsWindows()) return; // Unix file modes
        var folder = IngestionFixture.TempFolder("state-mode");
        var path = Path.Combine(folder, ".state.jsonl");
        var a = Frame(folder, "a.jpg", exists: false);
        using (var state = IngestState.Open(path))
        {
            await state.RecordDoneAsync("key-a", [Accepted(a)], CancellationToken.None);
            await state.RecordCleanedAsync([a], CancellationToken.None);
        }
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        using (IngestState.Open(path))
        {
            Assert.Equal(0, new FileInfo(path).Length); // rewritten
        }
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }
}
