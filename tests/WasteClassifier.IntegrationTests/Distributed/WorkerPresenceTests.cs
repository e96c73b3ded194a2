using System.Net;
using System.Text.Json;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Distributed;

/// <summary>
/// Worker presence on PostgreSQL: a stand-alone worker process, idle, is listed up by an API-only process (which runs no
/// worker), and after its graceful stop no longer is; with no worker running, the API deletes rows past the retention.
/// </summary>
public sealed class WorkerPresenceTests : IAsyncLifetime
{
    private readonly string _workerId = $"worker-presence-{Guid.NewGuid():N}"[..30];
    private Dictionary<string, string?> _settings = null!;
    private ApiFactory? _api;
    private ServiceProcess? _worker;

    public async Task InitializeAsync()
    {
        _settings = new Dictionary<string, string?>(await TestServices.DeploymentSettingsAsync("presence"))
        {
            ["Model:InferenceThreads"] = "1",
            ["Worker:DecodeParallelism"] = "1",
            ["Worker:HeartbeatSeconds"] = "1",
        };
    }

    private async Task<ApiFactory> StartApiAsync()
    {
        var api = _api = new ApiFactory(_settings);
        var bus = await api.Services.GetRequiredService<IBusControl>().WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(60));
        if (bus != BusHealthStatus.Healthy) throw new InvalidOperationException($"the API's bus is {bus} after 60 s");
        return api;
    }

    [IntegrationFact]
    public async Task Workers_IdleWorkerProcess_IsUpWithItsModelThenStoppedAfterAGracefulStop()
    {
        var api = await StartApiAsync();
        using var http = api.CreateClient();
        // Before any worker: the API process runs none, so nothing is listed.
        Assert.Empty((await WorkersAsync(http)).GetProperty("workers").EnumerateArray());

        _worker = await ServiceProcess.StartWorkerAsync(new Dictionary<string, string?>(_settings) { ["Worker:Id"] = _workerId });

        // No image is sent: the worker is idle. Its first beat may come before its model has loaded; a later one names it.
        // Timed from the load: a fresh worker on a loaded machine took 74–110 s over it, no part of what the API lists.
        await _worker.WaitForModelAsync();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        JsonElement worker;
        while (true)
        {
            var listed = await WorkersAsync(http);
            worker = listed.GetProperty("workers").EnumerateArray().SingleOrDefault(w => w.GetProperty("worker_id").GetString() == _workerId);
            if (worker.ValueKind == JsonValueKind.Object && worker.GetProperty("model_version").ValueKind == JsonValueKind.String)
            {
                Assert.Equal(1, listed.GetProperty("up").GetInt32());
                break;
            }
            Assert.True(DateTime.UtcNow < deadline, $"worker {_workerId} not listed with a model within 60 s: {listed}");
            await Task.Delay(250);
        }
        Assert.Equal("up", worker.GetProperty("status").GetString());
        Assert.Equal(Environment.MachineName, worker.GetProperty("host_name").GetString());
        Assert.Equal(1, worker.GetProperty("heartbeat_seconds").GetInt32());
        Assert.Equal(JsonValueKind.Null, worker.GetProperty("stopped_at").ValueKind);

        // A graceful stop marks it before the host is gone: no wait for three missed beats.
        await _worker.DisposeAsync();
        _worker = null;

        var after = await WorkersAsync(http);
        var stopped = after.GetProperty("workers").EnumerateArray().Single(w => w.GetProperty("worker_id").GetString() == _workerId);
        Assert.Equal("stopped", stopped.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.String, stopped.GetProperty("stopped_at").ValueKind);
        Assert.Equal(0, after.GetProperty("up").GetInt32());
        Assert.Equal(1, after.GetProperty("stopped").GetInt32());
    }

    [IntegrationFact]
    public async Task Workers_NoWorkerRunning_TheApiDeletesRowsPastTheRetention()
    {
        // The rows of workers gone before this API-only process starts (a deployment scaled to zero workers): one last seen
        // past the retention, one within it.
        _settings["Worker:HeartbeatRetentionHours"] = "2";
        await using (var db = NewContext())
        {
            await db.Database.MigrateAsync();
            var now = await WorkerPresence.DatabaseNowAsync(db, CancellationToken.None);
            db.WorkerHeartbeats.AddRange(Gone("past-retention", now.AddHours(-3)), Gone("within-retention", now.AddHours(-1)));
            await db.SaveChangesAsync();
        }

        await StartApiAsync();

        // It sweeps as it starts, then hourly.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        List<string> left;
        while (true)
        {
            await using (var db = NewContext()) left = await db.WorkerHeartbeats.AsNoTracking().OrderBy(w => w.WorkerId).Select(w => w.WorkerId).ToListAsync();
            if (!left.Contains("past-retention")) break;
            Assert.True(DateTime.UtcNow < deadline, $"the API kept the row of a worker not seen for 3 h (retention 2 h) for 60 s: {string.Join(", ", left)}");
            await Task.Delay(250);
        }
        Assert.Equal(["within-retention"], left);

        static WorkerHeartbeat Gone(string id, DateTime lastSeen) => new()
        {
            WorkerId = id,
            HostName = "gone",
            ProcessStartedAt = lastSeen.AddHours(-1),
            HeartbeatSeconds = 15,
            LastSeenAt = lastSeen,
            StoppedAt = lastSeen,
        };
    }

    private ClassifierDbContext NewContext()
    {
        var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
        DatabaseExtensions.Configure(builder, new DatabaseOptions { Provider = DatabaseProviders.Postgres, ConnectionString = _settings["Database:ConnectionString"] },
            Path.GetTempPath());
        return new ClassifierDbContext(builder.Options);
    }

    private static async Task<JsonElement> WorkersAsync(HttpClient http)
    {
        var response = await http.GetAsync("/v1/workers?minutes=5");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET /v1/workers answered {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    public async Task DisposeAsync()
    {
        if (_worker is not null) await _worker.DisposeAsync();
        if (_api is not null) await _api.DisposeAsync();
        if (_settings is null) return;
        await TestServices.DeleteClassifyQueuesAsync(_settings["Messaging:ClassifyQueue"]!);
        await TestServices.DeleteTrainQueueAsync(_settings["Messaging:TrainQueue"]!);
        await TestServices.DropDatabaseAsync(_settings["Database:ConnectionString"]!);
    }
}
