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
    public async Task Open_AnswersForFilesGone_DroppedAndWhatResendingNeedsKept()
    {
        var folder = IngestionFixture.TempFolder("state-compaction");
        var path = Path.Combine(folder, ".state.jsonl");
        var gone = Enumerable.Range(0, 50).Select(i => Frame(folder, $"gone-{i}.jpg", exists: false)).ToList();
        var here = Frame(folder, "here.jpg", exists: true);
        var pending = Frame(folder, "pending.jpg", exists: false);
        using (var state = IngestState.Open(path))
        {
            foreach (var f in gone)
            {
                await state.RecordSendAsync("key-" + f.Path, [f], CancellationToken.None);
                await state.RecordDoneAsync("key-" + f.Path, [Accepted(f)], CancellationToken.None);
            }
            await state.RecordSendAsync("key-here", [here], CancellationToken.None);
            await state.RecordDoneAsync("key-here", [Accepted(here)], CancellationToken.None);
            // Sent, never answered: kept with its key whether its file exists or not (the API may hold it).
            await state.RecordSendAsync("key-pending", [pending], CancellationToken.None);
        }
        var before = new FileInfo(path).Length;

        using (var state = IngestState.Open(path))
        {
            Assert.True(new FileInfo(path).Length < before / 10, $"{new FileInfo(path).Length} bytes of {before}");
            Assert.Equal(1, state.AnsweredCount);
            Assert.Equal("id-here.jpg", state.Answer(here)?.Id);
            Assert.Null(state.Answer(gone[0]));
            var (key, files) = Assert.Single(state.Unanswered);
            Assert.Equal(("key-pending", pending), (key, Assert.Single(files)));
        }
        // A rewritten file reads back the same.
        using (var state = IngestState.Open(path))
        {
            Assert.Equal("id-here.jpg", state.Answer(here)?.Id);
            Assert.Equal("key-pending", Assert.Single(state.Unanswered).Key);
        }
        Assert.Equal([".state.jsonl", "here.jpg"], Directory.EnumerateFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal));
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
        }

        Assert.InRange(File.ReadLines(path).Count(), 1, 25);
        Assert.InRange(state.AnsweredCount, 1, 25);
    }
}
