using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Components.Classifying;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;
using WasteClassifier.Testing;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// A worker's graceful stop on the real PostgreSQL, where commands go over the network: a beat already on its way when
/// stopping begins is written before the stop mark, and no beat after it, so the row says stopped.
/// </summary>
public sealed class WorkerHeartbeatStopTests
{
    [IntegrationFact]
    public Task HeartbeatService_OnPostgres_BeatInFlightWhenStopping_IsWrittenBeforeTheStopMarkAndNoneAfter()
    {
        var gate = new GatedWrites();
        return ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "presence-stop", async newContext =>
        {
            using var services = new ServiceCollection().AddScoped(_ => newContext()).BuildServiceProvider();
            var model = new SwitchableModel("v1");
            var service = new WorkerHeartbeatService(services.GetRequiredService<IServiceScopeFactory>(), new WorkerOptions { Id = "w-stop" }, model,
                TimeProvider.System, NullLogger<WorkerHeartbeatService>.Instance);
            await service.BeatAsync(CancellationToken.None);

            // The next beat names v2 and is held after its connection opened, before its command is sent: a beat still in
            // flight when the shutdown's timeout runs out.
            model.Version = "v2";
            gate.Hold();
            var inFlight = service.BeatAsync(CancellationToken.None);
            // Bounded: a beat that failed before its command (a dropped connection) would otherwise hang the run unnamed.
            await gate.Entered.WaitAsync(TimeSpan.FromSeconds(30));
            var stopping = service.StopAsync(CancellationToken.None);
            // A stop mark that did not wait for the beat would be written now (over its own connection) and then cleared by the
            // held beat. Waiting for the stop to end, for 1 s at most (it has 5 s in all, and the held beat and the mark must
            // still be written after the release on a loaded machine), gives it that chance; one that waits for the beat never
            // ends before it is released.
            await Task.WhenAny(stopping, Task.Delay(TimeSpan.FromSeconds(1)));
            gate.Release();
            await inFlight;
            await stopping;

            var row = await ReadAsync(newContext);
            // The held beat was written (its model), and the stop mark after it: the mark's own last_seen_at is the row's.
            Assert.Equal("v2", row.ModelVersion);
            Assert.NotNull(row.StoppedAt);
            Assert.Equal(row.StoppedAt, row.LastSeenAt);

            // A beat once stopping has begun writes nothing.
            model.Version = "v3";
            await service.BeatAsync(CancellationToken.None);
            var after = await ReadAsync(newContext);
            Assert.Equal("v2", after.ModelVersion);
            Assert.Equal(row.StoppedAt, after.StoppedAt);
        }, gate);
    }

    private static async Task<WorkerHeartbeat> ReadAsync(Func<ClassifierDbContext> newContext)
    {
        await using var db = newContext();
        return await db.WorkerHeartbeats.AsNoTracking().SingleAsync(w => w.WorkerId == "w-stop");
    }

    /// <summary>The model a worker has loaded, changed by the test between beats.</summary>
    private sealed class SwitchableModel(string version) : IModelProvider
    {
        public string Version { get; set; } = version;

        public ModelCard? LoadedCard => new() { Version = Version, Labels = ["a", "b"], Input = new ModelInputSpec() };

        public Task<ModelLease> AcquireAsync(CancellationToken cancellationToken) => throw new NotSupportedException("no batch runs here");
    }
}
