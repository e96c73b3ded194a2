using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Cli.Commands;
using WasteClassifier.Cli.Ingest;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Ingestion;

/// <summary><c>wastectl ingest</c>'s engine against the embedded API: arrivals, a stop halfway, refusals and retries.</summary>
[Collection(IngestionCollection.Name)]
public sealed class FolderIngestTests(IngestionFixture fixture)
{
    private static IngestOptions Options(string source, string folder, string state, bool once = false, string? archive = null) => new()
    {
        Source = source,
        WatchDirectory = folder,
        Once = once,
        StateFile = state,
        Concurrency = 3,
        BatchSize = 8,
        // Longer than any stall between a camera's two writes, even on a loaded 2-core CI machine.
        Settle = TimeSpan.FromSeconds(2),
        Rescan = TimeSpan.FromSeconds(1),
        BatchWait = TimeSpan.FromMilliseconds(100),
        RetryBase = TimeSpan.FromMilliseconds(50),
        ArchiveDirectory = archive,
        ProgressInterval = TimeSpan.FromSeconds(5),
    };

    [Fact]
    public async Task Ingest_FolderWithArrivalsStoppedAndRestarted_EveryFileClassifiedExactlyOnce()
    {
        const string source = "ingest-restart";
        var images = Dataset.Manifest.Where((_, i) => i % 7 == 0).Take(240).ToList();
        var folder = IngestionFixture.TempFolder("watch");
        var archive = IngestionFixture.TempFolder("archive");
        var state = Path.Combine(IngestionFixture.TempFolder("state"), "ingest.jsonl");
        var http = fixture.Client.Http;
        // Two thirds exist at start; the rest arrive while the ingester runs, each written in two parts (a camera mid-write).
        foreach (var (path, label) in images.Take(160)) File.Copy(path, Path.Combine(folder, NameOf(path, label)));
        var writer = Task.Run(async () =>
        {
            foreach (var (path, label) in images.Skip(160))
            {
                var bytes = await File.ReadAllBytesAsync(path);
                await using (var stream = new FileStream(Path.Combine(folder, NameOf(path, label)), FileMode.CreateNew))
                {
                    await stream.WriteAsync(bytes.AsMemory(0, bytes.Length / 2));
                    await stream.FlushAsync();
                    await Task.Delay(40);
                    await stream.WriteAsync(bytes.AsMemory(bytes.Length / 2));
                }
                await Task.Delay(60);
            }
        });

        // First run: stopped (as by Ctrl+C) with requests in flight once about a third is in.
        using (var stop = new CancellationTokenSource())
        {
            var first = new Ingester(Options(source, folder, state, archive: archive), http).RunAsync(stop.Token);
            await WaitForTotalAsync(http, source, 80, TimeSpan.FromSeconds(60));
            await stop.CancelAsync();
            var summary = await first;
            Assert.Null(summary.FatalError);
            Assert.InRange(summary.Sent, 1, images.Count - 1);
        }

        // Second run, same state file, while files keep arriving: it resumes and catches up.
        using (var stop = new CancellationTokenSource())
        {
            var second = new Ingester(Options(source, folder, state, archive: archive), http).RunAsync(stop.Token);
            await writer;
            await WaitForTotalAsync(http, source, images.Count, TimeSpan.FromSeconds(90));
            await Task.Delay(1500); // a late duplicate send would show up in the counts below
            await stop.CancelAsync();
            Assert.Null((await second).FatalError);
        }

        // A third, --once run finds nothing left to send.
        var third = await new Ingester(Options(source, folder, state, once: true, archive: archive), http).RunAsync(CancellationToken.None);
        Assert.Equal(0, third.Sent);
        Assert.Equal(0, third.Refused);

        var sourceRow = await IngestionFixture.WaitForSourceAsync(http, source, images.Count, TimeSpan.FromSeconds(120));
        Assert.Equal(images.Count, sourceRow["total"]!.GetValue<long>());
        Assert.Equal(images.Count, sourceRow["completed"]!.GetValue<long>());

        // Exactly once per file: rows per content hash equal the files with that content.
        var expected = images.GroupBy(i => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(i.Path)))).ToDictionary(g => g.Key, g => g.Count());
        using (var scope = fixture.Factory.Services.CreateScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            var actual = await db.Classifications.Where(c => c.Source == source).GroupBy(c => c.Image!.ContentHash)
                .Select(g => new { g.Key, Count = g.Count() }).ToDictionaryAsync(g => g.Key, g => g.Count);
            Assert.Equal(expected.OrderBy(p => p.Key), actual.OrderBy(p => p.Key));
        }

        // Every accepted file was archived (none left behind, none lost), and the composition adds up.
        Assert.DoesNotContain(Directory.EnumerateFiles(folder), FileDiscovery.IsCandidate);
        Assert.Equal(images.Count, Directory.EnumerateFiles(archive).Count());
        var composition = (await http.GetFromJsonAsync<JsonNode>($"/v1/sources/{source}/composition?bucket=minute"))!;
        var overall = composition["overall"]!;
        Assert.Equal(images.Count, overall["total"]!.GetValue<long>());
        Assert.Equal(images.Count, overall["classes"]!.AsObject().Sum(c => c.Value!["count"]!.GetValue<long>()));
        Assert.Equal(1.0, overall["classes"]!.AsObject().Sum(c => c.Value!["share"]!.GetValue<double>()), 3);
        Assert.Equal(images.Count, composition["buckets"]!.AsArray().Sum(b => b!["total"]!.GetValue<long>()));
    }

    [Fact]
    public async Task Ingest_RefusedFile_RecordedAsFailedWithReasonAndNotResent()
    {
        const string source = "ingest-refused";
        var folder = IngestionFixture.TempFolder("refused");
        var state = Path.Combine(folder, ".state.jsonl");
        foreach (var (path, label) in Dataset.Sample(1).Take(2)) File.Copy(path, Path.Combine(folder, NameOf(path, label)));
        await File.WriteAllTextAsync(Path.Combine(folder, "notes.jpg"), "this is not a photograph");
        await File.WriteAllTextAsync(Path.Combine(folder, "frame.jpg.part"), "still being written");

        var first = await new Ingester(Options(source, folder, state, once: true), fixture.Client.Http).RunAsync(CancellationToken.None);
        Assert.Equal(2, first.Sent);
        var failure = Assert.Single(first.Failures);
        Assert.EndsWith("notes.jpg", failure.Path);
        Assert.Equal("not_an_image", failure.Error);

        var second = await new Ingester(Options(source, folder, state, once: true), fixture.Client.Http).RunAsync(CancellationToken.None);
        Assert.Equal(0, second.Sent + second.Refused);
        Assert.Equal(3, second.Skipped);
    }

    [Fact]
    public async Task Ingest_ServerErrorsAndDroppedConnections_RetriedWithBackoffAndSentOnce()
    {
        const string source = "ingest-retry";
        var folder = IngestionFixture.TempFolder("retry");
        foreach (var (path, label) in Dataset.Sample(1).Skip(2).Take(3)) File.Copy(path, Path.Combine(folder, NameOf(path, label)));
        // 503 with Retry-After, 429, 408 (a slow link, not the files), then a dropped connection after the API stored the batch:
        // the retry must replay, not resubmit.
        var flaky = new FlakyHandler(fixture.Factory.Server.CreateHandler());
        using var http = new HttpClient(flaky) { BaseAddress = fixture.Client.Http.BaseAddress };

        var options = Options(source, folder, Path.Combine(folder, ".state.jsonl"), once: true);
        var summary = await new Ingester(new IngestOptions
        {
            Source = options.Source,
            WatchDirectory = folder,
            Once = true,
            StateFile = options.StateFile,
            Settle = options.Settle,
            // All three files in one request, however long a pause between finding them: a run with --once sends its last
            // batch when the folder is done, not when this wait runs out.
            BatchWait = TimeSpan.FromSeconds(30),
            RetryBase = options.RetryBase,
            BatchSize = 16,
        }, http).RunAsync(CancellationToken.None);

        Assert.Null(summary.FatalError);
        Assert.Equal(3, summary.Sent);
        Assert.Equal(4, summary.Retries);
        Assert.Equal(5, flaky.Calls);
        var row = await IngestionFixture.WaitForSourceAsync(fixture.Client.Http, source, 3, TimeSpan.FromSeconds(60));
        Assert.Equal(3, row["total"]!.GetValue<long>());
    }

    [Fact]
    public async Task Ingest_ReplayOfBatchWithRefusedFile_RefusedFileSentAgainForItsReasonAndOthersMappedByIndex()
    {
        const string source = "ingest-replay-refused";
        var folder = IngestionFixture.TempFolder("replay-refused");
        var good = Dataset.Sample(1).Skip(5).Take(2).ToList();
        // Sent in name order: good, garbage, good.
        File.Copy(good[0].Path, Path.Combine(folder, "a.jpg"));
        await File.WriteAllTextAsync(Path.Combine(folder, "b.jpg"), "this is not a photograph");
        File.Copy(good[1].Path, Path.Combine(folder, "c.jpg"));
        // The first answer (202, b refused) is lost; the retry gets the replay, which lists only a and c, and does not say
        // why b was refused: b goes again, on its own.
        var lossy = new AnswerLostOnceHandler(fixture.Factory.Server.CreateHandler());
        using var http = new HttpClient(lossy) { BaseAddress = fixture.Client.Http.BaseAddress };

        var summary = await new Ingester(new IngestOptions
        {
            Source = source,
            WatchDirectory = folder,
            Once = true,
            StateFile = Path.Combine(folder, ".state.jsonl"),
            Settle = TimeSpan.FromMilliseconds(200),
            BatchWait = TimeSpan.FromSeconds(30),
            RetryBase = TimeSpan.FromMilliseconds(50),
            DeleteAfter = true,
        }, http).RunAsync(CancellationToken.None);

        Assert.Equal(3, lossy.Calls);
        Assert.Equal(2, summary.Sent);
        var failure = Assert.Single(summary.Failures);
        Assert.EndsWith("b.jpg", failure.Path);
        Assert.Equal("not_an_image", failure.Error);
        // Only the classified files were deleted.
        Assert.Equal(["b.jpg"], Directory.EnumerateFiles(folder).Select(Path.GetFileName).Where(n => !n!.StartsWith('.')).ToList());
        var row = await IngestionFixture.WaitForSourceAsync(fixture.Client.Http, source, 2, TimeSpan.FromSeconds(60));
        Assert.Equal(2, row["total"]!.GetValue<long>());
    }

    [Fact]
    public async Task Ingest_FileLockedAtTheTryWhoseAnswerWasLost_SentWithItsBytesOnTheNextTry()
    {
        const string source = "ingest-locked-answer-lost";
        var folder = IngestionFixture.TempFolder("locked-answer-lost");
        var samples = Dataset.Manifest.Skip(2300).Take(2).Select(s => s.Path).ToList();
        var b = Path.Combine(folder, "b.jpg");
        File.Copy(samples[0], Path.Combine(folder, "a.jpg"));
        File.Copy(samples[1], b);
        FileStream? held = null;
        // Try 1 fails before the API, and b is locked before try 2 reads it; try 2 is stored (a accepted, b's empty placeholder
        // refused) but its answer is lost, and b is readable again for try 3.
        var handler = new ScriptedHandler(fixture.Factory.Server.CreateHandler(), async (call, send) =>
        {
            switch (call)
            {
                case 1:
                    held = LockAgainstReads(b);
                    return Unavailable();
                case 2:
                    (await send()).Dispose();
                    await held!.DisposeAsync();
                    throw new HttpRequestException("connection reset by peer");
                default:
                    return await send();
            }
        });
        using var http = new HttpClient(handler) { BaseAddress = fixture.Client.Http.BaseAddress };
        var log = new ConcurrentQueue<string>();

        var summary = await new Ingester(SinglePass(source, folder, Path.Combine(folder, ".state.jsonl"), maxAttempts: 8), http, log.Enqueue).RunAsync(CancellationToken.None);

        // Try 3 carried b's bytes under the key of try 2, which had an empty file in b's place: the API replayed try 2 (it
        // answered 422 and wastectl stopped, for good), and b, which the replay does not list, went again on its own.
        Assert.True(summary.FatalError is null, summary.FatalError);
        Assert.Empty(summary.Failures);
        Assert.Equal((2, 0), (summary.Sent, summary.Refused));
        var requests = handler.Requests.ToList();
        Assert.Equal(4, requests.Count);
        Assert.Empty(requests[1].Single(f => f.Name == "b.jpg").Bytes);
        Assert.Equal(await File.ReadAllBytesAsync(b), Assert.Single(requests[3]).Bytes);
        await AssertClassifiedContentsAsync(source, samples);
    }

    [Fact]
    public async Task Ingest_FileRewrittenKeepingSizeAndTimeBeforeAnUnansweredBatchIsResent_KeyReusedIsSortedOutAndNothingSentTwice()
    {
        const string source = "ingest-key-reused";
        var folder = IngestionFixture.TempFolder("key-reused");
        var state = Path.Combine(folder, ".state.jsonl");
        var samples = Dataset.Manifest.Skip(2200).Take(2).Select(s => s.Path).ToList();
        var b = Path.Combine(folder, "b.jpg");
        File.Copy(samples[0], Path.Combine(folder, "a.jpg"));
        File.Copy(samples[1], b);
        IngestOptions Once(int maxAttempts) => SinglePass(source, folder, state, maxAttempts);

        // First run: the API accepts the batch but its answer is lost, and with one try the batch is left for the next run.
        var lossy = new AnswerLostOnceHandler(fixture.Factory.Server.CreateHandler());
        using (var lost = new HttpClient(lossy) { BaseAddress = fixture.Client.Http.BaseAddress })
            Assert.Equal(2, (await new Ingester(Once(maxAttempts: 1), lost).RunAsync(CancellationToken.None)).Deferred);
        // Then b gets other bytes, its size and time kept: nothing a new run can tell from the version its batch names.
        var rewritten = File.ReadAllBytes(b);
        rewritten[rewritten.Length / 2] ^= 0x01;
        var time = File.GetLastWriteTimeUtc(b);
        File.WriteAllBytes(b, rewritten);
        File.SetLastWriteTimeUtc(b, time);

        var recorder = new ScriptedHandler(fixture.Factory.Server.CreateHandler(), (_, send) => send());
        using var http = new HttpClient(recorder) { BaseAddress = fixture.Client.Http.BaseAddress };
        var log = new ConcurrentQueue<string>();
        var second = await new Ingester(Once(maxAttempts: 8), http, log.Enqueue).RunAsync(CancellationToken.None);

        // The resent batch was answered 422 idempotency_key_reused, which stopped the run, and every run after it, there.
        Assert.True(second.FatalError is null, second.FatalError);
        Assert.Contains(log, l => l.Contains("idempotency_key_reused", StringComparison.Ordinal));
        Assert.Empty(second.Failures);
        Assert.Equal((2, 0), (second.Sent, second.Refused));
        Assert.Equal(0, IngestCommand.ExitCode(second));
        // The API was asked under the batch's key (nothing stored: a replay or a 422), and b's new version then went alone
        // under a key of its own.
        Assert.Equal(rewritten, Assert.Single(recorder.Requests.Last()).Bytes);
        // a, the b the first run sent and the new b, once each; a third run has nothing to send.
        await AssertClassifiedContentsAsync(source, [samples[0], samples[1], b]);
        var third = await new Ingester(Once(maxAttempts: 8), fixture.Client.Http).RunAsync(CancellationToken.None);
        Assert.Equal((0, 0, 2), (third.Sent, third.Refused, third.Skipped));
    }

    [Fact]
    public async Task Send_UnreadableFileInBatch_ThatFileNotAnsweredAndTheOthersSent()
    {
        const string source = "ingest-unreadable";
        var folder = IngestionFixture.TempFolder("unreadable");
        var good = Dataset.Sample(1).Take(2).Select((s, i) =>
        {
            var copy = Path.Combine(folder, $"{i}.jpg");
            File.Copy(s.Path, copy);
            return copy;
        }).ToList();
        // Unreadable even for root: reading a folder throws UnauthorizedAccessException, as a file without read permission does.
        var unreadable = Path.Combine(folder, "locked.jpg");
        Directory.CreateDirectory(unreadable);
        var files = new[] { IngestFile.Stat(good[0])!, new IngestFile(unreadable, 1000, 0), IngestFile.Stat(good[1])! };
        var client = new IngestClient(fixture.Client.Http, new IngestOptions { Source = source, StateFile = Path.Combine(folder, ".state.jsonl") });

        var result = await client.SendAsync(IngestClient.KeyFor(source, files), files, CancellationToken.None);

        Assert.Equal(IngestClient.Kind.Answered, result.Kind);
        var byPath = result.Outcomes.ToDictionary(o => o.Path);
        // No answer at all: a read error is not a verdict on the file, which is tried again later.
        Assert.False(byPath.ContainsKey(unreadable), byPath.GetValueOrDefault(unreadable)?.Error);
        Assert.All(good, g => Assert.Equal(IngestState.Accepted, byPath[g].Outcome));
    }

    [Fact]
    public async Task Send_ReplayWithFileNowUnreadable_ThatFileAcceptedAsTheOriginalRequestAnswered()
    {
        const string source = "ingest-replay-unreadable";
        var folder = IngestionFixture.TempFolder("replay-unreadable");
        var paths = Dataset.Sample(1).Skip(3).Take(2).Select((s, i) =>
        {
            var copy = Path.Combine(folder, $"{i}.jpg");
            File.Copy(s.Path, copy);
            return copy;
        }).ToList();
        var files = paths.Select(p => IngestFile.Stat(p)!).ToList();
        var key = IngestClient.KeyFor(source, files);
        var client = new IngestClient(fixture.Client.Http, new IngestOptions { Source = source, StateFile = Path.Combine(folder, ".state.jsonl") });
        var original = await client.SendAsync(key, files, CancellationToken.None);
        Assert.All(original.Outcomes, o => Assert.Equal(IngestState.Accepted, o.Outcome));

        // Resent under the same key (as after a lost answer and a restart) while the second file is locked: it goes as an empty
        // placeholder, and the API's replay, which answers for the bytes the original carried, still names it accepted.
        using (LockAgainstReads(paths[1]))
        {
            var resent = await client.SendAsync(key, files, CancellationToken.None);
            Assert.Equal(IngestClient.Kind.Answered, resent.Kind);
            var byPath = resent.Outcomes.ToDictionary(o => o.Path);
            Assert.Equal(IngestState.Accepted, byPath[files[1].Path].Outcome);
            Assert.Equal(original.Outcomes.Single(o => o.Path == files[1].Path).Id, byPath[files[1].Path].Id);
        }
    }

    [Fact]
    public async Task Ingest_WatchedFileLockedAtFirst_SentOnceReadable()
    {
        const string source = "ingest-locked-watch";
        var folder = IngestionFixture.TempFolder("locked-watch");
        var state = Path.Combine(IngestionFixture.TempFolder("state"), "ingest.jsonl");
        var samples = Dataset.Sample(1).Skip(6).Take(2).ToList();
        File.Copy(samples[0].Path, Path.Combine(folder, "a.jpg"));
        var locked = Path.Combine(folder, "b.jpg");
        File.Copy(samples[1].Path, locked);
        var http = fixture.Client.Http;
        var log = new ConcurrentQueue<string>();
        var options = new IngestOptions
        {
            Source = source,
            WatchDirectory = folder,
            StateFile = state,
            Settle = TimeSpan.FromMilliseconds(200),
            // Both files in the first request, so b's first read has failed by the time a's row exists.
            BatchSize = 2,
            BatchWait = TimeSpan.FromSeconds(3),
            // Read retries after 50, 100, 200, then every 400 ms.
            RetryBase = TimeSpan.FromMilliseconds(50),
            RetryMax = TimeSpan.FromMilliseconds(400),
            ProgressInterval = TimeSpan.FromMilliseconds(100),
        };

        using var stop = new CancellationTokenSource();
        Task<Ingester.Summary> run;
        using (LockAgainstReads(locked))
        {
            run = new Ingester(options, http, log.Enqueue).RunAsync(stop.Token);
            await WaitForTotalAsync(http, source, 1, TimeSpan.FromSeconds(60));
            // Still tried after several failed reads: not given up, not recorded.
            await WaitForLogAsync(log, l => l.StartsWith("still cannot read", StringComparison.Ordinal) && l.Contains("b.jpg"));
        }
        // Sent once readable (the progress line counts answers, which come after the row exists).
        await WaitForLogAsync(log, l => l.StartsWith("2 sent,", StringComparison.Ordinal));
        await stop.CancelAsync();
        var summary = await run;

        Assert.Null(summary.FatalError);
        Assert.Equal(2, summary.Sent);
        Assert.Equal(0, summary.Refused);
        Assert.Empty(summary.Failures);
        Assert.Empty(summary.Unreadable);
        // Both answered in the state file: a later run sends nothing again.
        var again = await new Ingester(Options(source, folder, state, once: true), http).RunAsync(CancellationToken.None);
        Assert.Equal((0, 2), (again.Sent + again.Refused, again.Skipped));
        var row = await IngestionFixture.WaitForSourceAsync(http, source, 2, TimeSpan.FromSeconds(60));
        Assert.Equal(2, row["total"]!.GetValue<long>());
    }

    [Fact]
    public async Task Ingest_OnceWithLockedFile_ReportedUnreadableAndSentByTheNextRun()
    {
        const string source = "ingest-locked-once";
        var folder = IngestionFixture.TempFolder("locked-once");
        var state = Path.Combine(folder, ".state.jsonl");
        var samples = Dataset.Sample(1).Skip(1).Take(2).ToList();
        File.Copy(samples[0].Path, Path.Combine(folder, "a.jpg"));
        var locked = Path.Combine(folder, "b.jpg");
        File.Copy(samples[1].Path, locked);

        Ingester.Summary first;
        using (LockAgainstReads(locked))
            first = await new Ingester(Options(source, folder, state, once: true), fixture.Client.Http).RunAsync(CancellationToken.None);

        Assert.Equal(1, first.Sent);
        Assert.Equal(0, first.Refused);
        Assert.Empty(first.Failures);
        var unread = Assert.Single(first.Unreadable);
        Assert.Equal(locked, unread.Path);
        Assert.Equal("file_unreadable", unread.Error);
        Assert.NotEmpty(unread.Message);
        Assert.Equal(1, IngestCommand.ExitCode(first));

        // Not recorded as refused: the next run sends it.
        var second = await new Ingester(Options(source, folder, state, once: true), fixture.Client.Http).RunAsync(CancellationToken.None);
        Assert.Equal((1, 0, 1), (second.Sent, second.Refused, second.Skipped));
        Assert.Empty(second.Unreadable);
        Assert.Equal(0, IngestCommand.ExitCode(second));
        var row = await IngestionFixture.WaitForSourceAsync(fixture.Client.Http, source, 2, TimeSpan.FromSeconds(60));
        Assert.Equal(2, row["total"]!.GetValue<long>());
    }

    [Fact]
    public async Task Ingest_LockedFileInBatchWhoseAnswerWasLost_NextRunSendsItInsteadOfTakingTheReplaysAnswer()
    {
        const string source = "ingest-locked-lost";
        var folder = IngestionFixture.TempFolder("locked-lost");
        var state = Path.Combine(folder, ".state.jsonl");
        var samples = Dataset.Sample(1).Skip(4).Take(2).ToList();
        File.Copy(samples[0].Path, Path.Combine(folder, "a.jpg"));
        var locked = Path.Combine(folder, "b.jpg");
        File.Copy(samples[1].Path, locked);
        IngestOptions Once(int maxAttempts) => SinglePass(source, folder, state, maxAttempts);

        // First run: the API stores the batch but its answer is lost, and with one try the batch is left for the next run.
        var lossy = new AnswerLostOnceHandler(fixture.Factory.Server.CreateHandler());
        using (var http = new HttpClient(lossy) { BaseAddress = fixture.Client.Http.BaseAddress })
        using (LockAgainstReads(locked))
        {
            var first = await new Ingester(Once(maxAttempts: 1), http).RunAsync(CancellationToken.None);
            Assert.Equal(1, lossy.Calls);
            Assert.Equal(locked, Assert.Single(first.Unreadable).Path);
        }

        // Second run, b readable: the unanswered batch is resent under its key (a replayed), and b goes on its own. Had b
        // been in that batch as a placeholder, the replay would have named it refused, for good.
        var second = await new Ingester(Once(maxAttempts: 8), fixture.Client.Http).RunAsync(CancellationToken.None);
        Assert.Equal(0, second.Refused);
        Assert.Empty(second.Failures);
        Assert.Equal(2, second.Sent);
        var row = await IngestionFixture.WaitForSourceAsync(fixture.Client.Http, source, 2, TimeSpan.FromSeconds(60));
        Assert.Equal(2, row["total"]!.GetValue<long>());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task Ingest_FilesGoneBeforeAnUnansweredBatchIsResent_RecordedAcceptedWithTheIdsTheReplayGives(int gone)
    {
        var source = $"ingest-gone-resent-{gone}";
        var folder = IngestionFixture.TempFolder("gone-resent");
        var state = Path.Combine(folder, ".state.jsonl");
        var samples = Dataset.Sample(3).Skip(10).Take(2).ToList();
        var paths = new[] { Path.Combine(folder, "a.jpg"), Path.Combine(folder, "b.jpg") };
        File.Copy(samples[0].Path, paths[0]);
        File.Copy(samples[1].Path, paths[1]);
        IngestOptions Once(int maxAttempts) => SinglePass(source, folder, state, maxAttempts);

        // First run: the API accepts the batch but its answer is lost, and with one try the batch is left for the next run.
        var lossy = new AnswerLostOnceHandler(fixture.Factory.Server.CreateHandler());
        using (var http = new HttpClient(lossy) { BaseAddress = fixture.Client.Http.BaseAddress })
        {
            var first = await new Ingester(Once(maxAttempts: 1), http).RunAsync(CancellationToken.None);
            Assert.Equal((1, 0, 2), (lossy.Calls, first.Sent, first.Deferred));
        }

        // Gone before the next run (moved away by hand, or the camera's own clean-up): the replay still says they were accepted.
        foreach (var path in paths.TakeLast(gone)) File.Delete(path);
        var second = await new Ingester(Once(maxAttempts: 8), fixture.Client.Http).RunAsync(CancellationToken.None);

        Assert.Empty(second.Failures);
        Assert.Equal((2, 0), (second.Sent, second.Refused));
        var row = await IngestionFixture.WaitForSourceAsync(fixture.Client.Http, source, 2, TimeSpan.FromSeconds(60));
        Assert.Equal(2, row["total"]!.GetValue<long>());
        // The state file names each file with the id of the row the original request made.
        var done = File.ReadLines(state).Select(l => JsonNode.Parse(l)!).Last(e => e["op"]!.GetValue<string>() == IngestState.OpDone);
        var recorded = done["files"]!.AsArray().ToDictionary(f => f!["path"]!.GetValue<string>(), f => (Outcome: f!["outcome"]!.GetValue<string>(), Id: f["id"]?.GetValue<string>()));
        Assert.Equal(paths.Order(), recorded.Keys.Order());
        Assert.All(recorded.Values, r => Assert.Equal(IngestState.Accepted, r.Outcome));
        using var scope = fixture.Factory.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var ids = await db.Classifications.Where(c => c.Source == source).Select(c => c.Id).ToListAsync();
        Assert.Equal(ids.Select(i => i.ToString()).Order(), recorded.Values.Select(r => r.Id).Order());
    }

    [Fact]
    public async Task Ingest_WatchedFileWrittenAsPartThenRenamed_SentOnceUnderItsFinalName()
    {
        const string source = "ingest-rename";
        var folder = IngestionFixture.TempFolder("rename");
        var state = Path.Combine(IngestionFixture.TempFolder("state"), "ingest.jsonl");
        var bytes = await File.ReadAllBytesAsync(Dataset.Sample(3).Skip(12).First().Path);
        var recorder = new RecordingHandler(fixture.Factory.Server.CreateHandler());
        using var http = new HttpClient(recorder) { BaseAddress = fixture.Client.Http.BaseAddress };
        var log = new ConcurrentQueue<string>();
        var options = new IngestOptions
        {
            Source = source,
            WatchDirectory = folder,
            StateFile = state,
            Settle = TimeSpan.FromMilliseconds(200),
            // No rescan during the test: only the watcher's rename event can find the file.
            Rescan = TimeSpan.FromMinutes(10),
            BatchWait = TimeSpan.FromMilliseconds(100),
            ProgressInterval = TimeSpan.FromMilliseconds(100),
        };

        using var stop = new CancellationTokenSource();
        var run = new Ingester(options, http, log.Enqueue).RunAsync(stop.Token);
        await WaitForLogAsync(log, l => l.Contains(" sent,", StringComparison.Ordinal));
        // A camera writes under a partial name, pausing longer than the settle time midway, then renames it.
        var part = Path.Combine(folder, "x.jpg.part");
        await using (var stream = new FileStream(part, FileMode.CreateNew))
        {
            await stream.WriteAsync(bytes.AsMemory(0, bytes.Length / 2));
            await stream.FlushAsync();
            await Task.Delay(600);
            await stream.WriteAsync(bytes.AsMemory(bytes.Length / 2));
        }
        await Task.Delay(600);
        File.Move(part, Path.Combine(folder, "x.jpg"));
        await WaitForLogAsync(log, l => l.StartsWith("1 sent,", StringComparison.Ordinal));
        await Task.Delay(1500); // a second send would show up below
        await stop.CancelAsync();
        var summary = await run;

        Assert.Null(summary.FatalError);
        Assert.Equal((1, 0), (summary.Sent, summary.Refused));
        var request = Assert.Single(recorder.Requests);
        var file = Assert.Single(request);
        Assert.Equal("x.jpg", file.Name);
        Assert.Equal(bytes, file.Bytes);
        var row = await IngestionFixture.WaitForSourceAsync(fixture.Client.Http, source, 1, TimeSpan.FromSeconds(60));
        Assert.Equal(1, row["total"]!.GetValue<long>());
    }

    public enum Between { Unchanged, RewrittenInPlace, Deleted }

    [Theory]
    [InlineData(Between.Unchanged)]
    [InlineData(Between.RewrittenInPlace)]
    [InlineData(Between.Deleted)]
    public async Task Send_FileChangedBetweenTries_ReadAgainAndSentOnlyIfStillTheVersionItsKeyNames(Between between)
    {
        var source = $"ingest-between-tries-{between.ToString().ToLowerInvariant()}";
        var folder = IngestionFixture.TempFolder("between-tries");
        var paths = Dataset.Sample(1).Skip(2).Take(2).Select((s, i) =>
        {
            var copy = Path.Combine(folder, $"{i}.jpg");
            File.Copy(s.Path, copy);
            return copy;
        }).ToList();
        var files = paths.Select(p => IngestFile.Stat(p)!).ToList();
        var original = await File.ReadAllBytesAsync(paths[1]);
        // The first try fails; before it does, the second file changes. Rewritten in place keeps its size and time, so only
        // its content tells the versions apart.
        var recorder = new RecordingHandler(fixture.Factory.Server.CreateHandler(), onFirstRequest: () =>
        {
            if (between == Between.Deleted) File.Delete(paths[1]);
            if (between != Between.RewrittenInPlace) return;
            var rewritten = original.ToArray();
            rewritten[^10] ^= 0xff;
            File.WriteAllBytes(paths[1], rewritten);
            File.SetLastWriteTimeUtc(paths[1], new DateTime(files[1].MtimeTicks, DateTimeKind.Utc));
        });
        using var http = new HttpClient(recorder) { BaseAddress = fixture.Client.Http.BaseAddress };
        var client = new IngestClient(http, new IngestOptions { Source = source, StateFile = Path.Combine(folder, ".state.jsonl"), RetryBase = TimeSpan.FromMilliseconds(50) });

        var result = await client.SendAsync(IngestClient.KeyFor(source, files), files, CancellationToken.None);

        Assert.Equal(IngestClient.Kind.Answered, result.Kind);
        Assert.Equal(2, recorder.Requests.Count);
        var retry = recorder.Requests.Last();
        Assert.Equal(await File.ReadAllBytesAsync(paths[0]), retry[0].Bytes);
        var byPath = result.Outcomes.ToDictionary(o => o.Path);
        Assert.Equal(IngestState.Accepted, byPath[paths[0]].Outcome);
        if (between == Between.Unchanged)
        {
            Assert.Equal(original, retry[1].Bytes);
            Assert.Equal(IngestState.Accepted, byPath[paths[1]].Outcome);
            return;
        }
        // The version the key names is gone: the retry carries an empty placeholder in its place, never other bytes.
        Assert.Empty(retry[1].Bytes);
        Assert.Equal((IngestState.Refused, between == Between.Deleted ? "file_missing" : "file_changed"), (byPath[paths[1]].Outcome, byPath[paths[1]].Error));
    }

    [Fact]
    public async Task Ingest_WatchedBatchRetriedAfterAFileWasReplaced_OldVersionAnsweredChangedAndNewOneSentOnItsOwn()
    {
        const string source = "ingest-replaced-while-deferred";
        var folder = IngestionFixture.TempFolder("replaced-deferred");
        var state = Path.Combine(IngestionFixture.TempFolder("state"), "ingest.jsonl");
        var samples = Dataset.Sample(1).Skip(3).Take(3).Select(s => s.Path).ToList();
        var a = Path.Combine(folder, "a.jpg");
        var b = Path.Combine(folder, "b.jpg");
        File.Copy(samples[0], a);
        File.Copy(samples[1], b);
        // The first request fails and the batch waits for the next try (one try per request); meanwhile b is replaced.
        var recorder = new RecordingHandler(fixture.Factory.Server.CreateHandler(), onFirstRequest: () => File.WriteAllBytes(b, File.ReadAllBytes(samples[2])));
        using var http = new HttpClient(recorder) { BaseAddress = fixture.Client.Http.BaseAddress };
        var log = new ConcurrentQueue<string>();
        var options = new IngestOptions
        {
            Source = source,
            WatchDirectory = folder,
            StateFile = state,
            Settle = TimeSpan.FromMilliseconds(200),
            Rescan = TimeSpan.FromSeconds(1),
            // Both files in the first request.
            BatchSize = 2,
            BatchWait = TimeSpan.FromSeconds(3),
            MaxAttempts = 1,
            ProgressInterval = TimeSpan.FromMilliseconds(100),
        };

        using var stop = new CancellationTokenSource();
        var run = new Ingester(options, http, log.Enqueue).RunAsync(stop.Token);
        await WaitForLogAsync(log, l => l.StartsWith("2 sent, 1 refused,", StringComparison.Ordinal));
        await Task.Delay(1500); // a later send would show up below
        await stop.CancelAsync();
        var summary = await run;

        Assert.Null(summary.FatalError);
        Assert.Equal((2, 1), (summary.Sent, summary.Refused));
        var failure = Assert.Single(summary.Failures);
        Assert.Equal((b, "file_changed"), (failure.Path, failure.Error));
        // Deferred, then resent: a's bytes and an empty placeholder for the b that was replaced; the new b on its own.
        Assert.Equal(3, recorder.Requests.Count);
        var resent = recorder.Requests.ElementAt(1).ToDictionary(p => p.Name, p => p.Bytes);
        Assert.Equal(["a.jpg", "b.jpg"], resent.Keys.Order());
        Assert.Equal(await File.ReadAllBytesAsync(a), resent["a.jpg"]);
        Assert.Empty(resent["b.jpg"]);
        Assert.Equal(await File.ReadAllBytesAsync(b), Assert.Single(recorder.Requests.ElementAt(2)).Bytes);
        // Classified: a and the new b, once each; the old b's bytes never went.
        await AssertClassifiedContentsAsync(source, new[] { samples[0], samples[2] });
    }

    [Fact]
    public async Task Ingest_FileReplacedBeforeAnUnansweredBatchIsResent_NewVersionNotSentUnderTheOldKeyAndClassifiedOnce()
    {
        const string source = "ingest-replaced-before-resend";
        var folder = IngestionFixture.TempFolder("replaced-resend");
        var state = Path.Combine(folder, ".state.jsonl");
        var samples = Dataset.Sample(3).Skip(14).Take(3).Select(s => s.Path).ToList();
        var a = Path.Combine(folder, "a.jpg");
        var b = Path.Combine(folder, "b.jpg");
        File.Copy(samples[0], a);
        File.Copy(samples[1], b);
        IngestOptions Once(int maxAttempts) => SinglePass(source, folder, state, maxAttempts);

        await LeaveUnansweredAsync(Once(maxAttempts: 1), files: 2);
        File.WriteAllBytes(b, File.ReadAllBytes(samples[2]));

        // Second run resends the batch under its key: a, and an empty placeholder for the b it named. Third run: the new b.
        var second = await new Ingester(Once(maxAttempts: 8), fixture.Client.Http).RunAsync(CancellationToken.None);
        // The new b was not sent by this run (its discovery may be over when the answer comes): counted as left for the next.
        Assert.Equal((1, 1, 1), (second.Sent, second.Refused, second.Deferred));
        Assert.Equal((b, "file_changed"), (second.Failures.Single().Path, second.Failures.Single().Error));
        var third = await new Ingester(Once(maxAttempts: 8), fixture.Client.Http).RunAsync(CancellationToken.None);
        Assert.Equal((1, 0, 1), (third.Sent, third.Refused, third.Skipped));

        await AssertClassifiedContentsAsync(source, new[] { samples[0], samples[2] });
    }

    [Fact]
    public async Task Ingest_FileRecordedMissingThatComesBackUnchanged_IsSent()
    {
        const string source = "ingest-missing-back";
        var folder = IngestionFixture.TempFolder("missing-back");
        var away = IngestionFixture.TempFolder("missing-away");
        var state = Path.Combine(folder, ".state.jsonl");
        var samples = Dataset.Sample(3).Skip(12).Take(2).Select(s => s.Path).ToList();
        var a = Path.Combine(folder, "a.jpg");
        var b = Path.Combine(folder, "b.jpg");
        File.Copy(samples[0], a);
        File.Copy(samples[1], b);
        IngestOptions Once(int maxAttempts) => SinglePass(source, folder, state, maxAttempts);

        await LeaveUnansweredAsync(Once(maxAttempts: 1), files: 2);

        // b is away when the batch is resent: the API, which never took it, answers for a alone, and b is recorded missing.
        var moved = Path.Combine(away, "b.jpg");
        File.Move(b, moved);
        var second = await new Ingester(Once(maxAttempts: 8), fixture.Client.Http).RunAsync(CancellationToken.None);
        Assert.Equal((1, 1), (second.Sent, second.Refused));
        Assert.Equal((b, IngestClient.FileMissing), (second.Failures.Single().Path, second.Failures.Single().Error));

        // Back with its size and times kept (a sync tool recreating it): the same identity, but the API never had it.
        File.Move(moved, b);
        var third = await new Ingester(Once(maxAttempts: 8), fixture.Client.Http).RunAsync(CancellationToken.None);
        Assert.Equal((1, 0, 1), (third.Sent, third.Refused, third.Skipped));
        await IngestionFixture.WaitForSourceAsync(fixture.Client.Http, source, 2, TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task Ingest_BrokenSymbolicLink_NeitherSentNorAnsweredOnAnyRun()
    {
        const string source = "ingest-broken-link";
        var folder = IngestionFixture.TempFolder("broken-link");
        var state = Path.Combine(folder, ".state.jsonl");
        File.Copy(Dataset.Sample(3).Skip(22).First().Path, Path.Combine(folder, "a.jpg"));
        File.CreateSymbolicLink(Path.Combine(folder, "b.jpg"), Path.Combine(folder, "gone.jpg"));
        IngestOptions Once() => new()
        {
            Source = source,
            WatchDirectory = folder,
            Once = true,
            StateFile = state,
            Settle = TimeSpan.FromMilliseconds(200),
            BatchWait = TimeSpan.FromSeconds(1),
        };

        var first = await new Ingester(Once(), fixture.Client.Http).RunAsync(CancellationToken.None);
        var second = await new Ingester(Once(), fixture.Client.Http).RunAsync(CancellationToken.None);

        // Listed as a file, but there is nothing to read: not answered (file_missing) on every run or rescan.
        Assert.Equal((1, 0), (first.Sent, first.Refused));
        Assert.Equal((0, 0, 1), (second.Sent, second.Refused, second.Skipped));
    }

    [Fact]
    public async Task Ingest_WatchedFileReplacedBetweenTriesKeepingSizeAndTime_NewVersionSent()
    {
        const string source = "ingest-replaced-same-identity";
        var folder = IngestionFixture.TempFolder("replaced-same-identity");
        var state = Path.Combine(IngestionFixture.TempFolder("state"), "ingest.jsonl");
        var samples = Dataset.Manifest.Skip(2100).Take(3).Select(s => s.Path).ToList();
        var b = Path.Combine(folder, "b.jpg");
        File.Copy(samples[0], Path.Combine(folder, "a.jpg"));
        File.Copy(samples[1], b);
        var replaced = File.ReadAllBytes(b);
        replaced[replaced.Length / 2] ^= 0x01;
        // The first try fails before the API sees it; meanwhile b gets other bytes of the same length, its time put back.
        var recorder = new RecordingHandler(fixture.Factory.Server.CreateHandler(), onFirstRequest: () =>
        {
            var time = File.GetLastWriteTimeUtc(b);
            File.WriteAllBytes(b, replaced);
            File.SetLastWriteTimeUtc(b, time);
        });
        using var http = new HttpClient(recorder) { BaseAddress = fixture.Client.Http.BaseAddress };
        var log = new ConcurrentQueue<string>();
        // a and b go in one batch; b's new version waits in the next for a third file.
        var options = WatchInPairs(source, folder, state);

        using var stop = new CancellationTokenSource();
        var run = new Ingester(options, http, log.Enqueue).RunAsync(stop.Token);
        // The retry reads b again: same size and time, other content, so b is answered file_changed and a sent.
        await WaitForLogAsync(log, l => l.StartsWith("1 sent, 1 refused,", StringComparison.Ordinal));
        File.Copy(samples[2], Path.Combine(folder, "c.jpg"));
        await WaitForLogAsync(log, l => l.StartsWith("3 sent,", StringComparison.Ordinal));
        await stop.CancelAsync();
        var summary = await run;

        Assert.Equal((3, 1), (summary.Sent, summary.Refused));
        Assert.Equal((b, IngestClient.FileChanged), (summary.Failures.Single().Path, summary.Failures.Single().Error));
        // The new version went once, after the request that carried b's placeholder.
        var requests = recorder.Requests.ToList();
        Assert.Equal(3, requests.Count);
        Assert.Empty(requests[1].Single(f => f.Name == "b.jpg").Bytes);
        Assert.Equal(replaced, requests[2].Single(f => f.Name == "b.jpg").Bytes);
    }

    [Fact]
    public async Task Ingest_WatchedFileRewrittenAfterItSettled_SentOnceAsItsNewVersion()
    {
        const string source = "ingest-rewritten-after-settling";
        var folder = IngestionFixture.TempFolder("rewritten-settled");
        var state = Path.Combine(IngestionFixture.TempFolder("state"), "ingest.jsonl");
        var samples = Dataset.Sample(3).Skip(17).Take(4).Select(s => s.Path).ToList();
        var x = Path.Combine(folder, "x.jpg");
        File.Copy(samples[0], x);
        var recorder = new RecordingHandler(fixture.Factory.Server.CreateHandler());
        using var http = new HttpClient(recorder) { BaseAddress = fixture.Client.Http.BaseAddress };
        var log = new ConcurrentQueue<string>();
        // The settled file waits in its batch until a second file comes, however slow the machine: time to rewrite it first.
        var options = WatchInPairs(source, folder, state);

        using var stop = new CancellationTokenSource();
        var run = new Ingester(options, http, log.Enqueue).RunAsync(stop.Token);
        await WaitForLogAsync(log, l => l.Contains(" 1 waiting,", StringComparison.Ordinal));
        await WaitForLogAsync(log, l => l.Contains(" 0 waiting, 0 in flight,", StringComparison.Ordinal));
        Assert.Empty(recorder.Requests);
        File.WriteAllBytes(x, File.ReadAllBytes(samples[1]));
        // Two more files: one fills the batch holding x (read now: x changed, so it goes without x), the other waits in the
        // next batch for x's new version, settled again.
        File.Copy(samples[2], Path.Combine(folder, "y.jpg"));
        File.Copy(samples[3], Path.Combine(folder, "z.jpg"));
        await WaitForLogAsync(log, l => l.StartsWith("3 sent,", StringComparison.Ordinal));
        await Task.Delay(1500); // a second send would show up below
        await stop.CancelAsync();
        var summary = await run;

        // Only the new version of x went, once, and it is the version its answer is recorded for (a later run skips it).
        var sent = recorder.Requests.SelectMany(r => r).ToList();
        Assert.Equal(await File.ReadAllBytesAsync(samples[1]), Assert.Single(sent, f => f.Name == "x.jpg").Bytes);
        Assert.Equal(3, sent.Count);
        Assert.Equal((3, 0), (summary.Sent, summary.Refused));
        var answered = File.ReadLines(state).Select(l => JsonNode.Parse(l)!).Where(e => e["op"]!.GetValue<string>() == IngestState.OpDone)
            .SelectMany(e => e["files"]!.AsArray()).Single(f => f!["path"]!.GetValue<string>() == x)!;
        Assert.Equal(IngestFile.Stat(x)!.Key, $"{answered["path"]}|{answered["size"]}|{answered["mtime"]}");
        Assert.Contains(log, l => l.StartsWith($"could not read {x}: it changed after it was found", StringComparison.Ordinal));
        await AssertClassifiedContentsAsync(source, samples.Skip(1));
    }

    [Fact]
    public async Task Ingest_WatchedJpegWrittenInPiecesWithPausesLongerThanTheSettleTime_SentOnceWholeAndArchivedWhole()
    {
        const string source = "ingest-slow-writer";
        var folder = IngestionFixture.TempFolder("slow-writer");
        var archive = IngestionFixture.TempFolder("slow-writer-archive");
        var state = Path.Combine(IngestionFixture.TempFolder("state"), "ingest.jsonl");
        var bytes = await File.ReadAllBytesAsync(Dataset.Sample(3).Skip(13).First().Path);
        var recorder = new RecordingHandler(fixture.Factory.Server.CreateHandler());
        using var http = new HttpClient(recorder) { BaseAddress = fixture.Client.Http.BaseAddress };
        var log = new ConcurrentQueue<string>();
        var options = new IngestOptions
        {
            Source = source,
            WatchDirectory = folder,
            StateFile = state,
            Settle = TimeSpan.FromMilliseconds(200),
            IncompleteAfter = TimeSpan.FromSeconds(60),
            Rescan = TimeSpan.FromSeconds(1),
            BatchWait = TimeSpan.FromMilliseconds(100),
            ProgressInterval = TimeSpan.FromMilliseconds(100),
            ArchiveDirectory = archive,
        };

        using var stop = new CancellationTokenSource();
        var run = new Ingester(options, http, log.Enqueue).RunAsync(stop.Token);
        await WaitForLogAsync(log, l => l.Contains(" sent,", StringComparison.Ordinal));
        // Three pieces (30 %, 40 %, 30 %), each pause four times the settle time: every piece settles by size.
        var x = Path.Combine(folder, "x.jpg");
        int first = bytes.Length * 3 / 10, second = bytes.Length * 7 / 10;
        foreach (var (from, to) in new[] { (0, first), (first, second), (second, bytes.Length) })
        {
            await using (var stream = new FileStream(x, FileMode.Append)) await stream.WriteAsync(bytes.AsMemory(from, to - from));
            if (to < bytes.Length) await Task.Delay(800);
        }
        await WaitForLogAsync(log, l => l.StartsWith("1 sent,", StringComparison.Ordinal));
        await Task.Delay(1500); // a second send would show up below
        await stop.CancelAsync();
        var summary = await run;

        Assert.Null(summary.FatalError);
        Assert.Equal((1, 0), (summary.Sent, summary.Refused));
        var file = Assert.Single(Assert.Single(recorder.Requests));
        Assert.Equal(bytes, file.Bytes);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(Path.Combine(archive, "x.jpg")));
        Assert.False(File.Exists(x));
    }

    [Fact]
    public async Task Ingest_OnceWithJpegWithoutItsEnd_RefusedAsTheApiWouldNotSentAndNotCheckedAgain()
    {
        const string source = "ingest-cut-short";
        var folder = IngestionFixture.TempFolder("cut-short");
        var state = Path.Combine(folder, ".state.jsonl");
        var bytes = await File.ReadAllBytesAsync(Dataset.Sample(3).Skip(14).First().Path);
        // As some IP cameras write them: the whole image but its end-of-image marker (FF D9).
        await File.WriteAllBytesAsync(Path.Combine(folder, "cut.jpg"), bytes[..^2]);
        var recorder = new RecordingHandler(fixture.Factory.Server.CreateHandler());
        using var http = new HttpClient(recorder) { BaseAddress = fixture.Client.Http.BaseAddress };
        var options = new IngestOptions
        {
            Source = source,
            WatchDirectory = folder,
            Once = true,
            StateFile = state,
            Settle = TimeSpan.FromMilliseconds(200),
            IncompleteAfter = TimeSpan.FromSeconds(1),
        };

        var summary = await new Ingester(options, http).RunAsync(CancellationToken.None);

        Assert.Empty(recorder.Requests);
        Assert.Equal((0, 1), (summary.Sent, summary.Refused));
        var failure = Assert.Single(summary.Failures);
        // The code the API gives such a file (truncated_image), and why.
        Assert.Equal((Path.Combine(folder, "cut.jpg"), ImageErrors.Truncated), (failure.Path, failure.Error));
        Assert.StartsWith("the camera wrote a JPEG without its end", failure.Message);
        Assert.Equal(0, IngestCommand.ExitCode(summary));
        var again = await new Ingester(options, http).RunAsync(CancellationToken.None);
        Assert.Equal((0, 0, 1), (again.Sent, again.Refused, again.Skipped));
        Assert.Empty(recorder.Requests);
    }

    [Fact]
    public async Task Ingest_WatchedJpegCompletedWithoutItsSizeOrTimeChanging_SentWholeNotRefused()
    {
        const string source = "ingest-preallocated";
        var folder = IngestionFixture.TempFolder("preallocated");
        var state = Path.Combine(IngestionFixture.TempFolder("state"), "ingest.jsonl");
        var bytes = await File.ReadAllBytesAsync(Dataset.Sample(3).Skip(17).First().Path);
        var x = Path.Combine(folder, "x.jpg");
        // A writer that preallocates the full size: half the image, then zeros.
        await File.WriteAllBytesAsync(x, [.. bytes[..(bytes.Length / 2)], .. new byte[bytes.Length - bytes.Length / 2]]);
        var time = File.GetLastWriteTimeUtc(x);
        var recorder = new RecordingHandler(fixture.Factory.Server.CreateHandler());
        using var http = new HttpClient(recorder) { BaseAddress = fixture.Client.Http.BaseAddress };
        var log = new ConcurrentQueue<string>();
        var options = new IngestOptions
        {
            Source = source,
            WatchDirectory = folder,
            StateFile = state,
            Settle = TimeSpan.FromMilliseconds(200),
            IncompleteAfter = TimeSpan.FromSeconds(3),
            Rescan = TimeSpan.FromSeconds(1),
            BatchWait = TimeSpan.FromMilliseconds(50),
            ProgressInterval = TimeSpan.FromMilliseconds(50),
        };

        using var stop = new CancellationTokenSource();
        var run = new Ingester(options, http, log.Enqueue).RunAsync(stop.Token);
        await Task.Delay(1500); // settled, and found cut short
        // The rest written in place, its size unchanged and its time as before (a file system with coarse times).
        await using (var stream = new FileStream(x, FileMode.Open, FileAccess.Write)) await stream.WriteAsync(bytes);
        File.SetLastWriteTimeUtc(x, time);
        await WaitForLogAsync(log, l => l.StartsWith("1 sent,", StringComparison.Ordinal) || l.Contains(" 1 refused,", StringComparison.Ordinal));
        await stop.CancelAsync();
        var summary = await run;

        Assert.Empty(summary.Failures);
        Assert.Equal((1, 0), (summary.Sent, summary.Refused));
        Assert.Equal(bytes, Assert.Single(Assert.Single(recorder.Requests)).Bytes);
    }

    [Fact]
    public async Task Ingest_WatchedFileEmptyLongerThanTheSettleTime_SentOnceItsDataArrives()
    {
        const string source = "ingest-empty-then-data";
        var folder = IngestionFixture.TempFolder("empty-then-data");
        var state = Path.Combine(IngestionFixture.TempFolder("state"), "ingest.jsonl");
        var bytes = await File.ReadAllBytesAsync(Dataset.Sample(3).Skip(18).First().Path);
        var x = Path.Combine(folder, "x.jpg");
        await File.WriteAllBytesAsync(x, []); // an FTP server's STOR, before the data connection starts
        var recorder = new RecordingHandler(fixture.Factory.Server.CreateHandler());
        using var http = new HttpClient(recorder) { BaseAddress = fixture.Client.Http.BaseAddress };
        var log = new ConcurrentQueue<string>();
        var options = new IngestOptions
        {
            Source = source,
            WatchDirectory = folder,
            StateFile = state,
            Settle = TimeSpan.FromMilliseconds(200),
            IncompleteAfter = TimeSpan.FromSeconds(10),
            Rescan = TimeSpan.FromSeconds(1),
            BatchWait = TimeSpan.FromMilliseconds(50),
            ProgressInterval = TimeSpan.FromMilliseconds(50),
        };

        using var stop = new CancellationTokenSource();
        var run = new Ingester(options, http, log.Enqueue).RunAsync(stop.Token);
        await Task.Delay(1500); // empty for seven times the settle time
        await File.WriteAllBytesAsync(x, bytes);
        await WaitForLogAsync(log, l => l.StartsWith("1 sent,", StringComparison.Ordinal) || l.Contains(" 1 refused,", StringComparison.Ordinal));
        await stop.CancelAsync();
        var summary = await run;

        Assert.Empty(summary.Failures);
        Assert.Equal((1, 0), (summary.Sent, summary.Refused));
        Assert.Equal(bytes, Assert.Single(Assert.Single(recorder.Requests)).Bytes);
    }

    [Fact]
    public async Task Ingest_FileChangedAfterItWasSent_SentAsANewFrameWithALogLine()
    {
        const string source = "ingest-changed-after-sent";
        var folder = IngestionFixture.TempFolder("changed-after-sent");
        var state = Path.Combine(folder, ".state.jsonl");
        var samples = Dataset.Sample(3).Skip(15).Take(2).Select(s => s.Path).ToList();
        var x = Path.Combine(folder, "x.jpg");
        File.Copy(samples[0], x);
        var options = SinglePass(source, folder, state, maxAttempts: 8);
        Assert.Equal(1, (await new Ingester(options, fixture.Client.Http).RunAsync(CancellationToken.None)).Sent);
        File.Copy(samples[1], x, overwrite: true);
        var log = new ConcurrentQueue<string>();

        var summary = await new Ingester(options, fixture.Client.Http, log.Enqueue).RunAsync(CancellationToken.None);

        Assert.Equal(1, summary.Sent);
        Assert.Contains(log, l => l.StartsWith($"{x} changed after it was answered (accepted, {new FileInfo(samples[0]).Length} bytes; now {new FileInfo(samples[1]).Length} bytes): sending it as a new frame",
            StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Ingest_EmptyFile_RecordedAsFailedEmptyFileAfterTheSettleTime(bool once)
    {
        var source = $"ingest-empty-{(once ? "once" : "watch")}";
        var folder = IngestionFixture.TempFolder("empty");
        var state = Path.Combine(folder, ".state.jsonl");
        await File.WriteAllBytesAsync(Path.Combine(folder, "empty.jpg"), []);
        var log = new ConcurrentQueue<string>();
        var options = once ? SinglePass(source, folder, state, maxAttempts: 8) : WatchInPairs(source, folder, state);

        using var stop = new CancellationTokenSource();
        var run = new Ingester(options, fixture.Client.Http, log.Enqueue).RunAsync(stop.Token);
        if (!once)
        {
            await WaitForLogAsync(log, l => l.StartsWith("0 sent, 1 refused, 0 already sent, 0 waiting,", StringComparison.Ordinal));
            await stop.CancelAsync();
        }
        var summary = await run;

        var failure = Assert.Single(summary.Failures);
        Assert.Equal((Path.Combine(folder, "empty.jpg"), Ingester.EmptyFile), (failure.Path, failure.Error));
        Assert.Equal((0, 1), (summary.Sent, summary.Refused));
        Assert.Contains(File.ReadLines(state), l => l.Contains("\"error\":\"empty_file\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Ingest_WatchedFileSentAndFoundAgainByRescans_NotCountedAlreadySentUntilTheNextRun()
    {
        const string source = "ingest-rescan-count";
        var folder = IngestionFixture.TempFolder("rescan-count");
        var state = Path.Combine(folder, ".state.jsonl");
        File.Copy(Dataset.Sample(3).Skip(16).First().Path, Path.Combine(folder, "a.jpg"));
        var log = new ConcurrentQueue<string>();
        var options = new IngestOptions
        {
            Source = source,
            WatchDirectory = folder,
            StateFile = state,
            Settle = TimeSpan.FromMilliseconds(100),
            Rescan = TimeSpan.FromMilliseconds(200),
            BatchWait = TimeSpan.FromMilliseconds(50),
            ProgressInterval = TimeSpan.FromMilliseconds(50),
        };

        using var stop = new CancellationTokenSource();
        var run = new Ingester(options, fixture.Client.Http, log.Enqueue).RunAsync(stop.Token);
        await WaitForLogAsync(log, l => l.StartsWith("1 sent,", StringComparison.Ordinal));
        await Task.Delay(1500); // several rescans find a.jpg again
        await stop.CancelAsync();
        var summary = await run;

        Assert.Equal((1, 0), (summary.Sent, summary.Skipped));
        Assert.DoesNotContain(log, l => l.Contains(" 1 already sent,", StringComparison.Ordinal));
        var next = await new Ingester(SinglePass(source, folder, state, maxAttempts: 8), fixture.Client.Http).RunAsync(CancellationToken.None);
        Assert.Equal((0, 1), (next.Sent, next.Skipped));
    }

    [Fact]
    public async Task Ingest_FolderWithSubfoldersWithoutRecursive_WarnedOncePerFolder()
    {
        var folder = IngestionFixture.TempFolder("subfolders");
        var state = Path.Combine(IngestionFixture.TempFolder("state"), "ingest.jsonl");
        Directory.CreateDirectory(Path.Combine(folder, "day-1"));
        Directory.CreateDirectory(Path.Combine(folder, "day-2"));
        Directory.CreateDirectory(Path.Combine(folder, ".hidden"));
        await File.WriteAllTextAsync(Path.Combine(folder, "day-1", "a.jpg"), "not sent: in a subfolder");
        var log = new ConcurrentQueue<string>();
        var options = new IngestOptions
        {
            Source = "ingest-subfolders",
            WatchDirectory = folder,
            StateFile = state,
            Settle = TimeSpan.FromMilliseconds(100),
            Rescan = TimeSpan.FromMilliseconds(100),
            ProgressInterval = TimeSpan.FromMilliseconds(50),
        };

        using var stop = new CancellationTokenSource();
        var run = new Ingester(options, fixture.Client.Http, log.Enqueue).RunAsync(stop.Token);
        await Task.Delay(1000); // rescans
        await stop.CancelAsync();
        var summary = await run;
        var paths = await new Ingester(new IngestOptions { Source = "ingest-subfolders", Paths = [folder], Once = true, StateFile = state }, fixture.Client.Http, log.Enqueue)
            .RunAsync(CancellationToken.None);

        Assert.Equal((0, 0), (summary.Sent, paths.Sent));
        Assert.Equal(2, log.Count(l => l == $"{folder}: 2 subfolder(s) skipped; use --recursive to send their files too"));
    }

    /// <summary>Waits for <paramref name="source"/>'s classifications and checks they are of exactly these files' contents, once each.</summary>
    private async Task AssertClassifiedContentsAsync(string source, IEnumerable<string> files)
    {
        var expected = files.Select(p => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(p)))).Order().ToList();
        await IngestionFixture.WaitForSourceAsync(fixture.Client.Http, source, expected.Count, TimeSpan.FromSeconds(60));
        using var scope = fixture.Factory.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var hashes = await db.Classifications.Where(c => c.Source == source).Select(c => c.Image!.ContentHash).ToListAsync();
        Assert.Equal(expected, hashes.Order());
    }

    /// <summary>
    /// Watching <paramref name="folder"/>, files sent two to a request: a batch waits for its second file (the 30-second
    /// batch wait only bounds a test that goes wrong), so a test decides when a batch is read. Retries and progress are fast.
    /// </summary>
    private static IngestOptions WatchInPairs(string source, string folder, string state) => new()
    {
        Source = source,
        WatchDirectory = folder,
        StateFile = state,
        Settle = TimeSpan.FromMilliseconds(200),
        BatchSize = 2,
        BatchWait = TimeSpan.FromSeconds(30),
        Rescan = TimeSpan.FromSeconds(1),
        RetryBase = TimeSpan.FromMilliseconds(50),
        ProgressInterval = TimeSpan.FromMilliseconds(50),
    };

    /// <summary>A single pass over <paramref name="folder"/> that sends what it finds in one batch.</summary>
    private static IngestOptions SinglePass(string source, string folder, string state, int maxAttempts) => new()
    {
        Source = source,
        WatchDirectory = folder,
        Once = true,
        StateFile = state,
        Settle = TimeSpan.FromMilliseconds(200),
        BatchWait = TimeSpan.FromSeconds(30),
        MaxAttempts = maxAttempts,
    };

    /// <summary>A first run whose one try fails before the API sees it: its batch stays recorded as sent, for the next run to resend.</summary>
    private async Task LeaveUnansweredAsync(IngestOptions options, int files)
    {
        var failing = new RecordingHandler(fixture.Factory.Server.CreateHandler(), onFirstRequest: () => { });
        using var http = new HttpClient(failing) { BaseAddress = fixture.Client.Http.BaseAddress };
        Assert.Equal(files, (await new Ingester(options, http).RunAsync(CancellationToken.None)).Deferred);
    }

    private static async Task WaitForLogAsync(ConcurrentQueue<string> log, Func<string, bool> line)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!log.Any(line))
        {
            Assert.True(DateTime.UtcNow < deadline, $"no such log line in 60 s; the last: {string.Join(" | ", log.TakeLast(5))}");
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// Holds a file open as a camera or a virus scanner holding it would: on Linux, .NET's FileShare.None takes an
    /// exclusive flock, so the ingester's read (FileShare.Read) fails with an IOException, root or not.
    /// </summary>
    private static FileStream LockAgainstReads(string path)
    {
        var held = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.None);
        Assert.Throws<IOException>(() => File.ReadAllBytes(path));
        return held;
    }

    /// <summary>
    /// Records the files of every request (name and bytes, in order). With <c>onFirstRequest</c>, the first request runs it
    /// and is answered 503 without reaching the API.
    /// </summary>
    private sealed class RecordingHandler(HttpMessageHandler inner, Action? onFirstRequest = null) : DelegatingHandler(inner)
    {
        public ConcurrentQueue<IReadOnlyList<(string Name, byte[] Bytes)>> Requests { get; } = new();

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var files = new List<(string, byte[])>();
            foreach (var part in request.Content as MultipartFormDataContent ?? [])
                if (part.Headers.ContentDisposition?.FileName is { } name) files.Add((name.Trim('"'), await part.ReadAsByteArrayAsync(cancellationToken)));
            Requests.Enqueue(files);
            if (onFirstRequest is null || Requests.Count > 1) return await base.SendAsync(request, cancellationToken);
            onFirstRequest();
            var busy = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable) { Content = JsonContent.Create(new { error = "unavailable", message = "starting" }) };
            busy.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.Zero);
            return busy;
        }
    }

    private static HttpResponseMessage Unavailable()
    {
        var busy = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable) { Content = JsonContent.Create(new { error = "unavailable", message = "starting" }) };
        busy.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.Zero);
        return busy;
    }

    /// <summary>
    /// Records the files of every request (name and bytes, in order), and answers call N (from 1) as <c>script</c> says,
    /// given a function that sends the request on to the API.
    /// </summary>
    private sealed class ScriptedHandler(HttpMessageHandler inner, Func<int, Func<Task<HttpResponseMessage>>, Task<HttpResponseMessage>> script) : DelegatingHandler(inner)
    {
        public ConcurrentQueue<IReadOnlyList<(string Name, byte[] Bytes)>> Requests { get; } = new();

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var files = new List<(string, byte[])>();
            foreach (var part in request.Content as MultipartFormDataContent ?? [])
                if (part.Headers.ContentDisposition?.FileName is { } name) files.Add((name.Trim('"'), await part.ReadAsByteArrayAsync(cancellationToken)));
            Requests.Enqueue(files);
            return await script(Requests.Count, () => base.SendAsync(request, cancellationToken));
        }
    }

    private sealed class AnswerLostOnceHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        public int Calls;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken);
            if (Interlocked.Increment(ref Calls) > 1) return response;
            response.Dispose();
            throw new HttpRequestException("connection reset by peer");
        }
    }

    private sealed class FlakyHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        public int Calls;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            switch (Interlocked.Increment(ref Calls))
            {
                case 1:
                    var busy = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable) { Content = JsonContent.Create(new { error = "unavailable", message = "starting" }) };
                    busy.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.Zero);
                    return busy;
                case 2:
                    return new HttpResponseMessage(HttpStatusCode.TooManyRequests);
                case 3:
                    return new HttpResponseMessage(HttpStatusCode.RequestTimeout) { Content = JsonContent.Create(new { error = "request_timeout", message = "the request body came too slowly" }) };
                case 4:
                    await base.SendAsync(request, cancellationToken);
                    throw new HttpRequestException("connection reset by peer");
                default:
                    return await base.SendAsync(request, cancellationToken);
            }
        }
    }

    // Dataset file names repeat across classes.
    private static string NameOf(string path, string label) => $"{label}-{Path.GetFileName(path)}";

    private static async Task WaitForTotalAsync(HttpClient http, string source, int total, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var body = (await http.GetFromJsonAsync<JsonNode>("/v1/sources"))!;
            var row = body["sources"]!.AsArray().FirstOrDefault(s => s!["name"]!.GetValue<string>() == source);
            if (row is not null && row["total"]!.GetValue<long>() >= total) return;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{source}: fewer than {total} rows after {timeout}");
            await Task.Delay(50);
        }
    }
}
