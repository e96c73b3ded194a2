using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Reliability;

/// <summary>
/// One distributed deployment (in-process API, worker child processes) on the real servers with its own database,
/// bucket and queue; a stream of real submissions; and the accounting the fault tests assert on.
/// </summary>
public sealed class FaultHarness : IAsyncDisposable
{
    public Dictionary<string, string?> Settings { get; private set; } = null!;
    public ApiFactory Api { get; set; } = null!;
    public List<WorkerProcess> Workers { get; } = [];
    private readonly List<byte[]> _images = Dataset.Sample(perClass: 4).Select(s => File.ReadAllBytes(s.Path)).ToList();

    public static async Task<FaultHarness> StartAsync(int workers)
    {
        var harness = new FaultHarness
        {
            Settings = new Dictionary<string, string?>(await TestServices.DeploymentSettingsAsync("fault"))
            {
                ["Worker:BatchSize"] = "8",
                ["Worker:DecodeParallelism"] = "1",
                ["Model:InferenceThreads"] = "1",
                ["Worker:ShutdownTimeoutSeconds"] = "15",
                ["Republish:IntervalSeconds"] = "1",
                ["Republish:UnsentAfterSeconds"] = "2",
                ["Republish:StuckAfterSeconds"] = "45",
            },
        };
        harness.Api = new ApiFactory(harness.Settings);
        harness.Api.CreateClient(); // starts the API: migrations, bucket, bundled model
        for (var i = 0; i < workers; i++)
            harness.Workers.Add(WorkerProcess.Start(new Dictionary<string, string?>(harness.Settings) { ["Worker:Id"] = $"fault-worker-{i}" }));
        // Warm: one image through the whole pipeline before any fault.
        var warm = await harness.SubmitAsync(harness.Api.CreateClient(), 0);
        await harness.WaitAllFinalAsync([warm!.Value], TimeSpan.FromMinutes(2));
        return harness;
    }

    public sealed record Report(string Fault, int Submissions, int Accepted, int Refused, int Completed, Dictionary<string, int> FailedByReason,
        int Lost, int Duplicates, double? RecoverySeconds, double DrainSeconds)
    {
        public string Row() =>
            $"| {Fault} | {Submissions} | {Accepted} | {Refused} | {Completed} | " +
            $"{(FailedByReason.Count == 0 ? "0" : string.Join(", ", FailedByReason.Select(f => $"{f.Value} {f.Key}")))} | {Lost} | " +
            $"{(RecoverySeconds is { } r ? $"{r:F1} s" : "–")} | {DrainSeconds:F1} s |";
    }

    /// <summary>
    /// Submits one image every <paramref name="interval"/> for <paramref name="duration"/> while <paramref name="fault"/>
    /// runs (it returns when the fault is over), then waits until every accepted id is final and accounts for them.
    /// </summary>
    public async Task<Report> RunAsync(string name, TimeSpan duration, TimeSpan interval, Func<Task> fault, Func<HttpClient>? client = null)
    {
        var accepted = new ConcurrentBag<Guid>();
        var refused = 0;
        var submissions = 0;
        var clock = Stopwatch.StartNew();
        var faultTask = Task.Run(async () =>
        {
            await Task.Delay(TimeSpan.FromSeconds(3));
            await fault();
            return clock.Elapsed;
        });
        var pending = new List<Task>();
        while (clock.Elapsed < duration)
        {
            var n = submissions++;
            var http = client?.Invoke() ?? Api.CreateClient();
            pending.Add(Task.Run(async () =>
            {
                var id = await SubmitAsync(http, n);
                if (id is { } ok) accepted.Add(ok);
                else Interlocked.Increment(ref refused);
            }));
            await Task.Delay(interval);
        }
        await Task.WhenAll(pending);
        var faultOver = await faultTask;
        var ids = accepted.ToList();
        var final = await WaitAllFinalAsync(ids, TimeSpan.FromMinutes(3));
        var drained = clock.Elapsed;

        using var scope = Api.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var rows = await db.Classifications.AsNoTracking().Where(c => ids.Contains(c.Id)).ToListAsync();
        var completedAfter = rows.Where(r => r.CompletedAt is not null).Select(r => r.CompletedAt!.Value).ToList();
        var start = DateTime.UtcNow - clock.Elapsed;
        var firstAfterFault = completedAfter.Where(t => t > start + faultOver).DefaultIfEmpty().Min();
        return new Report(name, submissions, ids.Count, refused,
            rows.Count(r => r.Status == ClassificationStatus.Completed),
            rows.Where(r => r.Status == ClassificationStatus.Failed).GroupBy(r => r.ErrorCode ?? "none").ToDictionary(g => g.Key, g => g.Count()),
            Lost: ids.Count - final,
            Duplicates: ids.Count - ids.Distinct().Count(),
            RecoverySeconds: firstAfterFault == default ? null : (firstAfterFault - (start + faultOver)).TotalSeconds,
            DrainSeconds: (drained - faultOver).TotalSeconds);
    }

    /// <summary>One image per request: the id on 202, null for any refusal (4xx/5xx, connection error, timeout).</summary>
    public async Task<Guid?> SubmitAsync(HttpClient http, int n)
    {
        try
        {
            http.Timeout = TimeSpan.FromSeconds(30);
            var (response, body) = await new ClassifierClient(http).SubmitAsync([($"fault-{n}.jpg", _images[n % _images.Count])], source: "fault-test");
            return response.StatusCode == HttpStatusCode.Accepted ? Guid.Parse(body["items"]![0]!["id"]!.GetValue<string>()) : null;
        }
        // OperationCanceledException, not only TaskCanceledException: the in-process test server, disposed while it reads a
        // request's body, cancels the client's copy of it ("Flush was canceled on underlying PipeWriter"), which a client
        // of a real process sees as a dropped connection.
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or ObjectDisposedException or InvalidOperationException or Xunit.Sdk.XunitException)
        {
            return null;
        }
    }

    /// <summary>How many of <paramref name="ids"/> are completed or failed (with a reason) by the deadline; read from the database.</summary>
    public async Task<int> WaitAllFinalAsync(IReadOnlyList<Guid> ids, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var final = 0;
            try
            {
                using var scope = Api.Services.CreateScope();
                var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
                final = await db.Classifications.AsNoTracking().CountAsync(c => ids.Contains(c.Id) &&
                    (c.Status == ClassificationStatus.Completed || (c.Status == ClassificationStatus.Failed && c.Error != null && c.ErrorCode != null)));
            }
            catch (Exception e) when (e is System.Data.Common.DbException or InvalidOperationException)
            {
                // the database may still be starting
            }
            if (final == ids.Count || DateTime.UtcNow > deadline) return final;
            await Task.Delay(500);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var worker in Workers) await worker.DisposeAsync();
        if (Api is not null) await Api.DisposeAsync();
        await TestServices.DeleteClassifyQueuesAsync(Settings["Messaging:ClassifyQueue"]!);
        await TestServices.DropDatabaseAsync(Settings["Database:ConnectionString"]!);
    }
}
