using System.Diagnostics;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Components.Models;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Testing;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Components;

/// <summary>
/// A promotion is committed before it is announced (ModelPromoted): an announcement the broker refuses or holds leaves the
/// promotion standing and its caller (the API, a training job) answered, since workers also check the registry.
/// </summary>
public sealed class ModelRegistryPromotionTests : IDisposable
{
    private readonly InMemoryDatabase _database = new();

    [Fact]
    public async Task Promote_AnnouncementRefused_PromotionStandsAndNamesThePreviousVersion()
    {
        await _database.AddModelAsync("v1", ModelStatus.Active);
        await _database.AddModelAsync("v2", ModelStatus.Candidate);

        var previous = await Registry(UnreachablePublishEndpoint.Failing()).PromoteAsync("v2", CancellationToken.None);

        Assert.Equal("v1", previous);
        Assert.Equal([("v1", ModelStatus.Retired), ("v2", ModelStatus.Active)], await StatusesAsync());
    }

    [Fact]
    public async Task PromoteReplacing_AnnouncementHeldByTheBroker_ReturnsPromotedWithinTheTimeout()
    {
        await _database.AddModelAsync("v1", ModelStatus.Active);
        await _database.AddModelAsync("v2", ModelStatus.Candidate);
        var clock = Stopwatch.StartNew();

        Assert.True(await Registry(UnreachablePublishEndpoint.Hang()).PromoteReplacingAsync("v2", "v1", CancellationToken.None));

        Assert.InRange(clock.Elapsed, ModelRegistry.PublishTimeout - TimeSpan.FromMilliseconds(100), ModelRegistry.PublishTimeout + TimeSpan.FromSeconds(10));
        Assert.Equal([("v1", ModelStatus.Retired), ("v2", ModelStatus.Active)], await StatusesAsync());
    }

    [Fact]
    public async Task PromoteReplacing_VersionAlreadyActive_CountsAsPromotedAndChangesNothing()
    {
        // Two trainers finishing the same job both found the candidate never promoted; the first promoted it.
        await _database.AddModelAsync("v1", ModelStatus.Retired);
        await _database.AddModelAsync("v2", ModelStatus.Active);
        await _database.AddModelAsync("v3", ModelStatus.Candidate);

        Assert.True(await Registry(UnreachablePublishEndpoint.Failing()).PromoteReplacingAsync("v2", "v1", CancellationToken.None));
        Assert.False(await Registry(UnreachablePublishEndpoint.Failing()).PromoteReplacingAsync("v3", "v1", CancellationToken.None));

        Assert.Equal([("v1", ModelStatus.Retired), ("v2", ModelStatus.Active), ("v3", ModelStatus.Candidate)], await StatusesAsync());
    }

    [Fact]
    public async Task PromoteReplacing_CandidatePromotedThenRolledBack_IsNotPromotedAgain()
    {
        // A trainer found its candidate v2 never promoted, then stalled; another trainer of the same job promoted it, and an
        // operator rolled back to v1, the baseline the stalled trainer still expects.
        await _database.AddModelAsync("v1", ModelStatus.Active);
        await _database.AddModelAsync("v2", ModelStatus.Candidate);
        await Registry(UnreachablePublishEndpoint.Failing()).PromoteAsync("v2", CancellationToken.None);
        await Registry(UnreachablePublishEndpoint.Failing()).PromoteAsync("v1", CancellationToken.None);

        // Counted as promoted (it was), changing nothing: the rollback stands.
        Assert.True(await Registry(UnreachablePublishEndpoint.Failing()).PromoteReplacingAsync("v2", "v1", CancellationToken.None));

        Assert.Equal([("v1", ModelStatus.Active), ("v2", ModelStatus.Retired)], await StatusesAsync());
    }

    [Fact]
    public async Task Rollback_TwiceToOneVersion_TheSecondFindsItActiveAndChangesNothing()
    {
        // Two rollbacks to v1 at once both passed the API's check (v1 not active) before either took the promotion lock;
        // run one after the other, the second is the one that found v1 active under the lock.
        await _database.AddModelAsync("v1", ModelStatus.Retired);
        await _database.AddModelAsync("v2", ModelStatus.Active);
        var published = new List<object>();

        Assert.Equal((true, "v2"), await Registry(RecordingPublishEndpoint.Create(published)).RollbackAsync("v1", CancellationToken.None));
        var promotedAt = await PromotedAtAsync("v1");
        Assert.Equal((false, null), await Registry(RecordingPublishEndpoint.Create(published)).RollbackAsync("v1", CancellationToken.None));

        Assert.Equal(promotedAt, await PromotedAtAsync("v1"));
        Assert.Equal("v1", Assert.IsType<ModelPromoted>(Assert.Single(published)).Version);
        Assert.Equal([("v1", ModelStatus.Active), ("v2", ModelStatus.Retired)], await StatusesAsync());
    }

    private async Task<DateTime?> PromotedAtAsync(string version)
    {
        await using var context = _database.NewContext();
        return (await context.Models.AsNoTracking().SingleAsync(m => m.Version == version)).PromotedAt;
    }

    private ModelRegistry Registry(IPublishEndpoint publisher) =>
        new(_database.Context, new MemoryObjectStore(), publisher, new ModelOptions(), TimeProvider.System, NullLogger<ModelRegistry>.Instance);

    private async Task<List<(string, string)>> StatusesAsync()
    {
        await using var context = _database.NewContext();
        return (await context.Models.AsNoTracking().OrderBy(m => m.Version).Select(m => new { m.Version, m.Status }).ToListAsync())
            .Select(m => (m.Version, m.Status)).ToList();
    }

    public void Dispose() => _database.Dispose();
}
