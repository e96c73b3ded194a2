using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Npgsql;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Observability;

/// <summary>
/// The worker's and the trainer's own listener (Metrics__Port) answer /health/ready within Health__CheckTimeoutSeconds when
/// a server they use takes connections and never answers, naming that component: the time-limited checks ApiHealthTests
/// tries on the API, here on the hosts their Programs build.
/// </summary>
public sealed class ServiceHealthTests
{
    [IntegrationFact]
    public async Task Worker_DatabaseHostSilent_ReadyAnswersWithinItsLimitNamingTheDatabase()
    {
        var settings = await TestServices.DeploymentSettingsAsync("svchealth");
        var connectionString = settings["Database:ConnectionString"]!;
        var real = new NpgsqlConnectionStringBuilder(connectionString);
        var relay = new SilentRelay(real.Host!, real.Port);
        var port = ObservabilityListenerTests.FreePort();
        ServiceProcess? worker = null;
        var passed = false;
        try
        {
            worker = await ServiceProcess.StartWorkerAsync(new Dictionary<string, string?>(settings)
            {
                ["Database:ConnectionString"] = new NpgsqlConnectionStringBuilder(connectionString) { Host = "127.0.0.1", Port = relay.Port }.ConnectionString,
                ["Worker:Id"] = $"worker-silent-db-{TestServices.NewSuffix()}",
                ["Metrics:Port"] = port.ToString(),
                ["Metrics:Host"] = "127.0.0.1",
                ["Health:CheckTimeoutSeconds"] = "3",
            });

            var check = await SilencedAsync(port, relay, "database");

            Assert.Equal("the database did not answer within 3 s", check.GetProperty("description").GetString());

            passed = true;
        }
        finally
        {
            // The relay first: its sockets closed, whatever still waits on the database fails at once and the host stops.
            await HealthProbes.CleanUpAsync(passed, async () => await relay.DisposeAsync(), async () => { if (worker is not null) await worker.DisposeAsync(); },
                () => TestServices.DeleteClassifyQueuesAsync(settings["Messaging:ClassifyQueue"]!), () => TestServices.DropDatabaseAsync(connectionString));
        }
    }

    [IntegrationFact]
    public async Task Trainer_ObjectStoreSilent_ReadyAnswersWithinItsLimitNamingTheObjectStore()
    {
        var settings = await TestServices.DeploymentSettingsAsync("svchealth");
        var relay = SilentRelay.To(settings["ObjectStore:Endpoint"]!);
        var port = ObservabilityListenerTests.FreePort();
        ServiceProcess? trainer = null;
        var passed = false;
        try
        {
            trainer = await ServiceProcess.StartTrainerAsync(new Dictionary<string, string?>(settings)
            {
                ["ObjectStore:Endpoint"] = relay.Endpoint,
                // wc-store-*: start-services.sh removes such buckets later.
                ["ObjectStore:Bucket"] = $"wc-store-health-{TestServices.NewSuffix()}",
                ["Metrics:Port"] = port.ToString(),
                ["Metrics:Host"] = "127.0.0.1",
                ["Health:CheckTimeoutSeconds"] = "3",
            });

            var check = await SilencedAsync(port, relay, "object_store");

            Assert.Equal("the object store did not answer within 3 s", check.GetProperty("description").GetString());

            passed = true;
        }
        finally
        {
            await HealthProbes.CleanUpAsync(passed, async () => await relay.DisposeAsync(), async () => { if (trainer is not null) await trainer.DisposeAsync(); },
                () => TestServices.DeleteTrainQueueAsync(settings["Messaging:TrainQueue"]!), () => TestServices.DropDatabaseAsync(settings["Database:ConnectionString"]!));
        }
    }

    /// <summary>
    /// The listener's check <paramref name="name"/> healthy, then, once <paramref name="relay"/> is silenced, /health/ready's
    /// 503 with that check unhealthy, answered before Npgsql's 15 s connect timeout: far above the 3 s limit, so a loaded
    /// machine passes, and below every driver timeout (the S3 client's 30 s, Npgsql's) a check without the limit waited for.
    /// </summary>
    private static async Task<JsonElement> SilencedAsync(int port, SilentRelay relay, string name)
    {
        // Past the drivers' timeouts: without the limit the answer comes, too late, instead of the client giving up.
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(90) };
        await HealthProbes.UntilHealthyAsync(http, "/health/ready", "checks", name);

        relay.Silence();
        var clock = Stopwatch.StartNew();
        var ready = await http.GetAsync("/health/ready");
        var took = clock.Elapsed;
        var text = await ready.Content.ReadAsStringAsync();

        Assert.True(took < TimeSpan.FromSeconds(14), $"/health/ready took {took.TotalSeconds:F1} s: {text}");
        Assert.True(ready.StatusCode == HttpStatusCode.ServiceUnavailable, text);
        using var json = JsonDocument.Parse(text);
        var check = json.RootElement.GetProperty("checks").GetProperty(name);
        Assert.Equal("unhealthy", check.GetProperty("status").GetString());
        return check.Clone();
    }
}
