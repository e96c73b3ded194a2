using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Serilog;
using Serilog.Configuration;
using Serilog.Core;
using Serilog.Events;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>
/// A request its client gives up on (a load test stopped with Ctrl+C) is a 499 in the request log, at Information, and in
/// the HTTP metrics: never an error that responded 500. Its own fresh host, whose log events the test reads (the request
/// log and the metrics are process-wide, hence the collection).
/// </summary>
[Collection(ProcessMetricsCollection.Name)]
public sealed class ClientAbortTests(ClientAbortTests.Fixture fixture) : IClassFixture<ClientAbortTests.Fixture>
{
    [Fact]
    public async Task LongPoll_ClientGoesAway_LoggedAndCountedAs499NotAs500Error()
    {
        var id = await TestRows.QueuedClassificationAsync(fixture.Factory.Services, "q");
        var path = $"/v1/classifications/{id}";
        var before = await fixture.Client.Http.GetStringAsync("/metrics");
        Assert.NotEmpty(CapturedLog.Events); // the host's startup: the sink is in place
        CapturedLog.Events.Clear();

        using (var client = new CancellationTokenSource(TimeSpan.FromSeconds(1)))
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => fixture.Client.Http.GetAsync($"{path}?wait=30", client.Token));

        // The server ends the request after the client has gone: wait for its log line.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        LogEvent? logged;
        while ((logged = CapturedLog.Events.FirstOrDefault(e => e.Properties.TryGetValue("RequestPath", out var p) && p.ToString() == $"\"{path}\"")) is null
               && DateTime.UtcNow < deadline)
            await Task.Delay(100);
        Assert.True(logged is not null, $"no request log line for {path} in 20 s");
        Assert.Equal("499", logged.Properties["StatusCode"].ToString());
        Assert.Equal(LogEventLevel.Information, logged.Level);
        Assert.DoesNotContain(CapturedLog.Events, e => e.Level >= LogEventLevel.Error);
        var after = await fixture.Client.Http.GetStringAsync("/metrics");
        Assert.Equal(Requests(before, "500"), Requests(after, "500"));
        Assert.Equal(Requests(before, "499") + 1, Requests(after, "499"));
    }

    [Fact]
    public async Task UploadContent_RequestLog_RedactsTheUploadId()
    {
        // The folder store's upload URL is authorised by its id alone: a log reader must not be able to use it.
        using var created = await fixture.Client.Http.PostAsJsonAsync("/v1/uploads", new { count = 1 });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var url = (await created.Content.ReadFromJsonAsync<JsonNode>())!["uploads"]![0]!["url"]!.GetValue<string>();
        var id = url.Split('/')[^2];
        CapturedLog.Events.Clear();

        // Accepted, and (an empty body) refused: both are logged at Information.
        Assert.Equal(HttpStatusCode.OK, (await fixture.Client.Http.PutAsync(url, new ByteArrayContent([1, 2, 3]))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await fixture.Client.Http.PutAsync(url.ToUpperInvariant().Replace("/V1/UPLOADS/", "/v1/uploads/"), new ByteArrayContent([]))).StatusCode);

        // The request log's line comes after the answer: up to 30 s for it on a loaded machine, the loop ending once it is there.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        List<LogEvent> logged;
        while ((logged = CapturedLog.Events.Where(e => e.Properties.TryGetValue("RequestMethod", out var m) && m.ToString() == "\"PUT\"").ToList()).Count < 2
               && DateTime.UtcNow < deadline)
            await Task.Delay(100);
        Assert.Equal(2, logged.Count);
        Assert.All(logged, e => Assert.Equal("\"/v1/uploads/***/content\"", e.Properties["RequestPath"].ToString(), ignoreCase: true));
        var everything = string.Join("\n", CapturedLog.Events.Select(e => e.RenderMessage() + " " + string.Join(" ", e.Properties.Values)));
        Assert.DoesNotContain(id, everything, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task UploadContent_StoreUnavailable_503AndNoLogEventNamesTheUploadId()
    {
        using var created = await fixture.Client.Http.PostAsJsonAsync("/v1/uploads", new { count = 1 });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var url = (await created.Content.ReadFromJsonAsync<JsonNode>())!["uploads"]![0]!["url"]!.GetValue<string>();
        var id = Guid.Parse(url.Split('/')[^2]);
        // A file where the staged uploads' folder goes: the folder store's writes fail as on a full or read-only volume.
        var folder = Path.Combine(fixture.DataDirectory, "objects", "waste-images", "uploads");
        var aside = folder + ".aside";
        if (Directory.Exists(folder)) Directory.Move(folder, aside);
        Directory.CreateDirectory(Path.GetDirectoryName(folder)!);
        await File.WriteAllBytesAsync(folder, [1]);
        CapturedLog.Events.Clear();
        try
        {
            using var response = await fixture.Client.Http.PutAsync(url, new ByteArrayContent([1, 2, 3]));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);

            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!CapturedLog.Events.Any(e => e.Properties.TryGetValue("StatusCode", out var s) && s.ToString() == "503") && DateTime.UtcNow < deadline)
                await Task.Delay(100);
            var everything = string.Join("\n", CapturedLog.Events.Select(e => e.RenderMessage() + " " + string.Join(" ", e.Properties.Values)));
            Assert.Contains("a dependency is unavailable", everything);
            Assert.DoesNotContain(id.ToString("D"), everything, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(id.ToString("N"), everything, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            File.Delete(folder);
            if (Directory.Exists(aside)) Directory.Move(aside, folder);
        }
    }

    /// <summary>The GET requests counted with this status code, over every route.</summary>
    private static double Requests(string metrics, string code) =>
        metrics.Split('\n').Where(l => l.StartsWith("http_requests_received_total{", StringComparison.Ordinal)
                && l.Contains($"code=\"{code}\"", StringComparison.Ordinal) && l.Contains("method=\"GET\"", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>The embedded default, its log events also written to <see cref="CapturedLog"/> as operators add a sink: by configuration.</summary>
    public sealed class Fixture() : EmbeddedFixture("abort-")
    {
        // The short form (WriteTo:0 = the method's name), without arguments: the factory hands settings to the host as
        // command-line arguments, under which WriteTo:0:Name and :Args left WriteTo:0 itself an empty string, which
        // Serilog took for the sink's name (SelfLog: "Unable to find a method called .") and added no sink.
        protected override IReadOnlyDictionary<string, string?> Settings => new Dictionary<string, string?>
        {
            ["Serilog:Using:0"] = typeof(CapturedLog).Assembly.GetName().Name,
            ["Serilog:WriteTo:0"] = nameof(CapturedLog.Captured),
        };
    }
}

/// <summary>
/// A Serilog sink that keeps log events in memory for <see cref="ClientAbortTests"/>: only its host is configured with it,
/// and its collection runs alone.
/// </summary>
public static class CapturedLog
{
    public static ConcurrentQueue<LogEvent> Events { get; } = new();

    public static LoggerConfiguration Captured(this LoggerSinkConfiguration sinks) => sinks.Sink(new Sink());

    private sealed class Sink : ILogEventSink
    {
        public void Emit(LogEvent logEvent) => Events.Enqueue(logEvent);
    }
}
