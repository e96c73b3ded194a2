using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Cli.Ingest;
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
        // 503 with Retry-After, 429, then a dropped connection after the API stored the batch: the retry must replay, not resubmit.
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

        Assert.Equal(3, summary.Sent);
        Assert.Equal(3, summary.Retries);
        Assert.Equal(4, flaky.Calls);
        var row = await IngestionFixture.WaitForSourceAsync(fixture.Client.Http, source, 3, TimeSpan.FromSeconds(60));
        Assert.Equal(3, row["total"]!.GetValue<long>());
    }

    [Fact]
    public async Task Ingest_ReplayOfBatchWithRefusedFile_RefusedFileKeptAndOthersMappedByIndex()
    {
        const string source = "ingest-replay-refused";
        var folder = IngestionFixture.TempFolder("replay-refused");
        var good = Dataset.Sample(1).Skip(5).Take(2).ToList();
        // Sent in name order: good, garbage, good.
        File.Copy(good[0].Path, Path.Combine(folder, "a.jpg"));
        await File.WriteAllTextAsync(Path.Combine(folder, "b.jpg"), "this is not a photograph");
        File.Copy(good[1].Path, Path.Combine(folder, "c.jpg"));
        // The first answer (202, b refused) is lost; the retry gets the replay, which lists only a and c.
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

        Assert.Equal(2, lossy.Calls);
        Assert.Equal(2, summary.Sent);
        var failure = Assert.Single(summary.Failures);
        Assert.EndsWith("b.jpg", failure.Path);
        Assert.Equal("refused_earlier", failure.Error);
        // Only the classified files were deleted.
        Assert.Equal(["b.jpg"], Directory.EnumerateFiles(folder).Select(Path.GetFileName).Where(n => !n!.StartsWith('.')).ToList());
        var row = await IngestionFixture.WaitForSourceAsync(fixture.Client.Http, source, 2, TimeSpan.FromSeconds(60));
        Assert.Equal(2, row["total"]!.GetValue<long>());
    }

    [Fact]
    public async Task Send_UnreadableFileInBatch_ThatFileRefusedAndTheOthersSent()
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
        Assert.Equal(IngestState.Refused, byPath[unreadable].Outcome);
        Assert.Equal("file_unreadable", byPath[unreadable].Error);
        Assert.All(good, g => Assert.Equal(IngestState.Accepted, byPath[g].Outcome));
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
