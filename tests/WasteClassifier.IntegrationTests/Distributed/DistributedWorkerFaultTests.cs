using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Distributed;

/// <summary>A worker that cannot load the model beside a healthy one, on RabbitMQ, PostgreSQL and the S3 server.</summary>
public sealed class DistributedWorkerFaultTests : IAsyncLifetime
{
    private readonly List<ServiceProcess> _workers = [];
    private readonly string _backbones = Directory.CreateTempSubdirectory("wc-no-backbones-").FullName;
    private Dictionary<string, string?> _settings = null!;
    private ApiFactory _api = null!;

    public async Task InitializeAsync()
    {
        _settings = new Dictionary<string, string?>(await TestServices.DeploymentSettingsAsync("workerfault"))
        {
            ["Worker:BatchSize"] = "4",
            ["Model:InferenceThreads"] = "1",
            ["Worker:DecodeParallelism"] = "1",
            // Few claims before too_many_attempts: a worker that counted its failed tries would end rows within seconds.
            ["Worker:MaxAttempts"] = "3",
        };
        _api = new ApiFactory(_settings);
        var bus = await _api.Services.GetRequiredService<IBusControl>().WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(60));
        if (bus != BusHealthStatus.Healthy) throw new InvalidOperationException($"the API's bus is {bus} after 60 s");
    }

    [IntegrationFact]
    public async Task Submit_WorkerWithoutItsModelAndAHealthyOne_EveryImageCompletesOnTheHealthyOneAndNoneFails()
    {
        // No backbone where the model's card needs one: this worker cannot load the active model (as a pod that cannot read
        // a promoted model's artifact), yet its consumer takes messages. It runs alone first, so it takes them all.
        _workers.Add(await ServiceProcess.StartWorkerAsync(new Dictionary<string, string?>(_settings)
        {
            ["Worker:Id"] = "worker-without-model",
            ["Model:BackbonesDirectory"] = _backbones,
        }));
        var consumed = new ClassifyImageConsumed();
        using var observing = _workers[0].Services.GetRequiredService<IBus>().ConnectConsumeMessageObserver(consumed);
        var client = new ClassifierClient(_api.CreateClient());
        var sample = Dataset.Sample(perClass: 2);
        var ids = await client.SubmitFilesAsync(sample.Select(s => s.Path));
        // Every message taken by it (and sent back) first: a fixed 5 s could pass on a loaded machine before it took them.
        await Task.WhenAll(ids.Select(consumed.For)).WaitAsync(TimeSpan.FromSeconds(60));
        _workers.Add(await ServiceProcess.StartWorkerAsync(new Dictionary<string, string?>(_settings) { ["Worker:Id"] = "healthy-worker" }));

        var results = await client.WaitForAllAsync(ids, TimeSpan.FromMinutes(3));

        Assert.All(results, r => Assert.Equal(("completed", "healthy-worker"),
            (r["status"]!.GetValue<string>(), r["worker_id"]?.GetValue<string>())));
        using var scope = _api.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        // Claimed by the healthy worker alone: the other took no attempt.
        Assert.Equal(0, await db.Classifications.CountAsync(c => ids.Contains(c.Id) && c.Attempts != 1));
    }

    public async Task DisposeAsync()
    {
        foreach (var worker in _workers) await worker.DisposeAsync();
        if (_api is not null) await _api.DisposeAsync();
        Directory.Delete(_backbones, recursive: true);
        if (_settings is null) return;
        await TestServices.DeleteClassifyQueuesAsync(_settings["Messaging:ClassifyQueue"]!);
        await TestServices.DeleteTrainQueueAsync(_settings["Messaging:TrainQueue"]!);
        await TestServices.DropDatabaseAsync(_settings["Database:ConnectionString"]!);
    }
}
