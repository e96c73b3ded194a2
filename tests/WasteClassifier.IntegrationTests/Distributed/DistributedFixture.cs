using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Components.Models;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Distributed;

/// <summary>
/// The distributed deployment on real servers: an API-only process and two worker processes sharing RabbitMQ,
/// PostgreSQL and the S3 server. Database, bucket and queue are unique to this fixture.
/// </summary>
public sealed class DistributedFixture : IAsyncLifetime
{
    // Unique per fixture: a worker's ModelPromoted queue is named by its id, and two fixtures run at once.
    private readonly string _workerSuffix = Guid.NewGuid().ToString("N")[..6];

    public string WorkerA => $"worker-a-{_workerSuffix}";
    public string WorkerB => $"worker-b-{_workerSuffix}";

    private readonly List<ServiceProcess> _processes = [];
    public ApiFactory Api { get; private set; } = null!;
    public ClassifierClient Client { get; private set; } = null!;
    public Dictionary<string, string?> Settings { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Settings = new Dictionary<string, string?>(await TestServices.DeploymentSettingsAsync("e2e"))
        {
            // Small batches with a prefetch of two batches each, so both workers must take part.
            ["Worker:BatchSize"] = "8",
            ["Worker:BatchWaitMs"] = "25",
            ["Model:InferenceThreads"] = "1",
            ["Worker:DecodeParallelism"] = "1",
            ["Model:RefreshSeconds"] = "30",
            // Training jobs on a small base set (see Training/TrainingFixture for why the gate is relaxed).
            ["Training:Datasets:small"] = SmallDatasets.Write(perClass: 20),
            ["Training:BaseDataset"] = "small",
            ["Training:MaxClassRecallDrop"] = "0.5",
            ["Training:MaxMacroF1Drop"] = "0.2",
            ["Training:CacheDirectory"] = Training.TrainingFixture.FeatureCache,
        };
        Api = new ApiFactory(Settings);
        Client = new ClassifierClient(Api.CreateClient());
        // The host starts the bus in the background: wait until the API's receive endpoints (e.g. for ClassificationsFinished)
        // are bound, or a test's first event can go to an exchange with no queue yet.
        var bus = await Api.Services.GetRequiredService<IBusControl>().WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(60));
        if (bus != BusHealthStatus.Healthy) throw new InvalidOperationException($"the API's bus is {bus} after 60 s");
        foreach (var id in new[] { WorkerA, WorkerB })
            _processes.Add(await ServiceProcess.StartWorkerAsync(new Dictionary<string, string?>(Settings) { ["Worker:Id"] = id }));
    }

    /// <summary>
    /// Waits until both workers have loaded their model (their watcher loads it at start): up to 3 min, as a loaded machine
    /// took 74–110 s. A test with a wait of its own (/predict's, 120 s in the tests) waits for this first, or its wait counts the load.
    /// </summary>
    public async Task WaitForWorkersModelAsync()
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        var workers = _processes.Take(2).Select(p => p.Services.GetRequiredService<IModelProvider>()).ToList();
        while (workers.Any(w => w.LoadedCard is null))
        {
            if (waited.Elapsed > TimeSpan.FromMinutes(3)) throw new TimeoutException("the workers did not load their model within 3 minutes");
            await Task.Delay(200);
        }
    }

    /// <summary>Adds a trainer process (src/WasteClassifier.Trainer's host) to the deployment.</summary>
    public async Task StartTrainerAsync() => _processes.Add(await ServiceProcess.StartTrainerAsync(Settings));

    public async Task DisposeAsync()
    {
        foreach (var process in _processes) await process.DisposeAsync();
        if (Api is not null) await Api.DisposeAsync();
        if (Settings is null) return;
        await TestServices.DeleteClassifyQueuesAsync(Settings["Messaging:ClassifyQueue"]!);
        await TestServices.DeleteTrainQueueAsync(Settings["Messaging:TrainQueue"]!);
        await TestServices.DropDatabaseAsync(Settings["Database:ConnectionString"]!);
    }
}
