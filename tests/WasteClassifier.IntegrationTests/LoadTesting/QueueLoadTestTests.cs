using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Fixtures;
using WasteClassifier.LoadTesting;
using WasteClassifier.LoadTesting.Images;
using WasteClassifier.LoadTesting.Reporting;
using WasteClassifier.LoadTesting.Targets;

namespace WasteClassifier.IntegrationTests.LoadTesting;

/// <summary>
/// <c>wastectl loadtest --queue --cleanup</c> on the real servers: ClassifyImage straight to RabbitMQ for a worker, with
/// no API in between, results read from PostgreSQL, and afterwards only what the run created removed.
/// </summary>
public sealed class QueueLoadTestTests : IAsyncLifetime
{
    private Dictionary<string, string?> _settings = null!;
    private ServiceProcess? _worker;

    public async Task InitializeAsync()
    {
        _settings = new Dictionary<string, string?>(await TestServices.DeploymentSettingsAsync("e2e"))
        {
            ["Model:InferenceThreads"] = "1",
            ["Worker:DecodeParallelism"] = "1",
        };
        // The worker migrates the database and creates the bucket before it consumes.
        _worker = await ServiceProcess.StartWorkerAsync(_settings);
    }

    public async Task DisposeAsync()
    {
        if (_worker is not null) await _worker.DisposeAsync();
        if (_settings is null) return;
        await TestServices.DeleteClassifyQueuesAsync(_settings["Messaging:ClassifyQueue"]!);
        await TestServices.DropDatabaseAsync(_settings["Database:ConnectionString"]!);
    }

    [IntegrationFact]
    public async Task QueueMode_RunOf12_AllCompletedWithServerTimings_CleanupRemovesOnlyWhatTheRunAloneCreated()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(_settings).Build();
        var images = ImageSet.Generated(3, 320, 240);
        await using var deployment = DeploymentServices.Build(configuration, withBus: false);
        // One of the run's three images was stored before the run: the cleanup must keep it. The images' bytes unchanged
        // (--repeat-images): by default queue mode makes them new content for the run, and shares no rows.
        var earlier = await StoreAsync(deployment, images.All[0]);
        var runStarted = DateTime.UtcNow;
        var options = KnownRun.Options("loadtest-queue") with { UniqueUploads = false };

        LoadRunResult result;
        await using (var target = new QueueLoadTarget(DeploymentServices.Build(configuration, withBus: true), options.Source, options.PollInterval))
            result = await new LoadRunner(target, images, options).RunAsync();
        var report = LoadReport.From(result);

        KnownRun.AssertAllCompleted(report);

        using var scope = deployment.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var created = await db.Images.Where(i => i.Id != earlier).OrderBy(i => i.ObjectKey).ToListAsync();
        Assert.Equal(2, created.Count);
        // A camera sent the same bytes as one of the run's images while it ran: that image is no longer the run's alone.
        var (shared, runOnly) = (created[0], created[1]);
        db.Classifications.Add(new Classification
        {
            Id = Guid.CreateVersion7(),
            ImageId = shared.Id,
            Source = "line-2",
            Status = ClassificationStatus.Queued,
            CreatedAt = DateTime.UtcNow,
        });
        await db.SaveChangesAsync();

        var removed = await RunCleanup.RemoveAsync(deployment, options.Source, runStarted, CancellationToken.None);

        Assert.Equal(new RunCleanup.Removed(KnownRun.Images, 1), removed);
        Assert.Equal("line-2", (await db.Classifications.AsNoTracking().SingleAsync()).Source);
        Assert.Equal(new[] { earlier, shared.Id }.Order(), (await db.Images.AsNoTracking().Select(i => i.Id).ToListAsync()).Order());
        var store = scope.ServiceProvider.GetRequiredService<IObjectStore>();
        Assert.Null(await store.GetAsync(runOnly.ObjectKey, CancellationToken.None));
        Assert.NotNull(await store.GetAsync(shared.ObjectKey, CancellationToken.None));
        Assert.NotNull(await store.GetAsync((await db.Images.AsNoTracking().SingleAsync(i => i.Id == earlier)).ObjectKey, CancellationToken.None));
    }

    [IntegrationFact]
    public async Task QueueMode_ImagesStoredButNeverSent_CleanupRemovesThemToo()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(_settings).Build();
        var runStarted = DateTime.UtcNow;
        // Three images stored before the clock starts, one request: two of them are never classified.
        var options = KnownRun.Options("loadtest-queue-unused") with { Users = 1, MaxRequests = 1 };

        IReadOnlyList<Guid> stored;
        await using (var target = new QueueLoadTarget(DeploymentServices.Build(configuration, withBus: true), options.Source, options.PollInterval))
        {
            Assert.Equal(1, LoadReport.From(await new LoadRunner(target, ImageSet.Generated(3, 320, 240), options).RunAsync()).Counts.Completed);
            stored = target.PreparedImageIds;
        }
        await using var deployment = DeploymentServices.Build(configuration, withBus: false);

        var removed = await RunCleanup.RemoveAsync(deployment, options.Source, runStarted, CancellationToken.None, stored);

        Assert.Equal(new RunCleanup.Removed(1, 3), removed);
        using var scope = deployment.CreateScope();
        Assert.False(await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Images.AnyAsync());
    }

    [IntegrationFact]
    public async Task QueueMode_CleanupLeftTheObjects_ALaterCleanupBySourceRemovesEveryImageTheRunStored()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(_settings).Build();
        var runStarted = DateTime.UtcNow;
        // Three images stored, one request: two are never classified.
        var options = KnownRun.Options("loadtest-queue-left") with { Users = 1, MaxRequests = 1 };
        IReadOnlyList<Guid> stored;
        await using (var target = new QueueLoadTarget(DeploymentServices.Build(configuration, withBus: true), options.Source, options.PollInterval))
        {
            Assert.Equal(1, LoadReport.From(await new LoadRunner(target, ImageSet.Generated(3, 320, 240), options).RunAsync()).Counts.Completed);
            stored = target.PreparedImageIds;
        }
        await using var deployment = DeploymentServices.Build(configuration, withBus: false);
        List<string> keys;
        using (var scope = deployment.CreateScope())
            keys = await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Images.Select(i => i.ObjectKey).ToListAsync();
        Assert.Equal(3, keys.Count);
        // The run's own cleanup meets an object store that is away (its bucket is not there): it keeps every image.
        var away = new ConfigurationBuilder().AddInMemoryCollection(_settings)
            .AddInMemoryCollection([KeyValuePair.Create("ObjectStore:Bucket", (string?)$"away-{Guid.NewGuid():N}")]).Build();
        await using (var storeAway = DeploymentServices.Build(away, withBus: false))
            Assert.Equal(3, (await RunCleanup.RemoveAsync(storeAway, options.Source, runStarted, CancellationToken.None, stored)).ImagesLeft);

        // Found by its source alone, as --cleanup --source does: the two images never classified were not, objects and rows.
        var removed = await RunCleanup.RemoveEarlierRunAsync(deployment, options.Source, CancellationToken.None);

        Assert.Equal(new RunCleanup.Removed(1, 3), removed);
        using (var scope = deployment.CreateScope())
        {
            Assert.False(await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Images.AnyAsync());
            var store = scope.ServiceProvider.GetRequiredService<IObjectStore>();
            foreach (var key in keys) Assert.Null(await store.GetAsync(key, CancellationToken.None));
        }
    }

    /// <summary>Stores an image and records its row, as an upload before the run would.</summary>
    private static async Task<Guid> StoreAsync(IServiceProvider deployment, TestImage image)
    {
        using var scope = deployment.CreateScope();
        var upload = new UploadedImage(0, image.FileName, image.ContentType, image.Content.Length, image.Content);
        var (accepted, _) = await scope.ServiceProvider.GetRequiredService<ImageIntake>().TakeAsync([upload], CancellationToken.None);
        return Assert.Single(accepted).Image.Id;
    }
}
