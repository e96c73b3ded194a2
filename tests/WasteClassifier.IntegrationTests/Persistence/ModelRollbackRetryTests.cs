using System.Data.Common;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using WasteClassifier.Components.Models;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Testing;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// A rollback or promotion on the real PostgreSQL whose COMMIT went through but whose answer was lost: the retrying strategy
/// runs it again, and the rerun must recognise its own commit rather than answer "already active" (a rollback), promote
/// again with no previous version (an operator's promotion) or find it "promoted before" (a trainer's), announcing nothing.
/// </summary>
public sealed class ModelRollbackRetryTests
{
    private static readonly DateTime Now = new(2026, 11, 30, 12, 0, 0, DateTimeKind.Utc);

    [IntegrationFact]
    public async Task Rollback_OnPostgres_CommitsAnswerLostThenRetried_RolledBackAndAnnounced()
    {
        var lost = new CommitAnswerLostOnce();
        await ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-rollback-retry", async newContext =>
        {
            await using (var db = newContext())
            {
                db.Models.Add(Model("v1", ModelStatus.Retired, Now.AddHours(-2)));
                db.Models.Add(Model("v2", ModelStatus.Active, Now.AddHours(-1)));
                await db.SaveChangesAsync();
            }
            var published = new List<object>();
            lost.Armed = true;

            (bool, string?) result;
            await using (var db = newContext())
                result = await new ModelRegistry(db, new FileSystemObjectStore(Path.Combine(Path.GetTempPath(), "wc-rollback-retry-unused")),
                    RecordingPublishEndpoint.Create(published), new ModelOptions(), TimeProvider.System,
                    NullLogger<ModelRegistry>.Instance).RollbackAsync("v1", CancellationToken.None);

            Assert.True(lost.Fired);
            Assert.Equal((true, "v2"), result);
            var announced = Assert.IsType<ModelPromoted>(Assert.Single(published));
            Assert.Equal(("v1", "v2"), (announced.Version, announced.PreviousVersion));
            await using (var db = newContext())
                Assert.Equal([("v1", ModelStatus.Active), ("v2", ModelStatus.Retired)],
                    (await db.Models.AsNoTracking().OrderBy(m => m.Version).Select(m => new { m.Version, m.Status }).ToListAsync()).Select(m => (m.Version, m.Status)));
        }, lost);
    }

    [IntegrationFact]
    public async Task Promote_OnPostgres_CommitsAnswerLostThenRetried_AnswersThePreviousVersionAndAnnouncesOnce()
    {
        var lost = new CommitAnswerLostOnce();
        await ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-promote-retry", async newContext =>
        {
            await SeedCandidateAsync(newContext);
            var published = new List<object>();
            lost.Armed = true;

            string? previous;
            await using (var db = newContext())
                previous = await Registry(db, published).PromoteAsync("v2", CancellationToken.None);

            Assert.True(lost.Fired);
            Assert.Equal("v1", previous);
            await AssertPromotedOnceAsync(newContext, published);
        }, lost);
    }

    [IntegrationFact]
    public async Task PromoteReplacing_OnPostgres_CommitsAnswerLostThenRetried_PromotedAndAnnouncedOnce()
    {
        var lost = new CommitAnswerLostOnce();
        await ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-promote-replacing-retry", async newContext =>
        {
            await SeedCandidateAsync(newContext);
            var published = new List<object>();
            lost.Armed = true;

            bool promoted;
            await using (var db = newContext())
                promoted = await Registry(db, published).PromoteReplacingAsync("v2", "v1", CancellationToken.None);

            Assert.True(lost.Fired);
            Assert.True(promoted);
            await AssertPromotedOnceAsync(newContext, published);
        }, lost);
    }

    /// <summary>v1 active, v2 a candidate never promoted.</summary>
    private static async Task SeedCandidateAsync(Func<ClassifierDbContext> newContext)
    {
        await using var db = newContext();
        db.Models.Add(Model("v1", ModelStatus.Active, Now.AddHours(-1)));
        db.Models.Add(Model("v2", ModelStatus.Candidate, promotedAt: null));
        await db.SaveChangesAsync();
    }

    private static async Task AssertPromotedOnceAsync(Func<ClassifierDbContext> newContext, List<object> published)
    {
        var announced = Assert.IsType<ModelPromoted>(Assert.Single(published));
        Assert.Equal(("v2", "v1"), (announced.Version, announced.PreviousVersion));
        await using var db = newContext();
        Assert.Equal([("v1", ModelStatus.Retired), ("v2", ModelStatus.Active)],
            (await db.Models.AsNoTracking().OrderBy(m => m.Version).Select(m => new { m.Version, m.Status }).ToListAsync()).Select(m => (m.Version, m.Status)));
    }

    private static ModelRegistry Registry(ClassifierDbContext db, List<object> published) =>
        new(db, new FileSystemObjectStore(Path.Combine(Path.GetTempPath(), "wc-promote-retry-unused")), RecordingPublishEndpoint.Create(published),
            new ModelOptions(), TimeProvider.System, NullLogger<ModelRegistry>.Instance);

    private static ModelRecord Model(string version, string status, DateTime? promotedAt) => new()
    {
        Version = version,
        Origin = "imported",
        CardJson = "{}",
        ArtifactPrefix = $"models/{version}/",
        CreatedAt = promotedAt ?? Now,
        PromotedAt = promotedAt,
        Status = status,
    };

    /// <summary>Once armed, after the first commit of a transaction that tracked a model, throws a transient NpgsqlException.</summary>
    private sealed class CommitAnswerLostOnce : DbTransactionInterceptor
    {
        private int _fired;

        public volatile bool Armed;

        public bool Fired => _fired == 1;

        public override Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            if (Armed && eventData.Context?.ChangeTracker.Entries<ModelRecord>().Any() == true && Interlocked.Exchange(ref _fired, 1) == 0)
                throw new NpgsqlException("Exception while reading from stream", new IOException("Connection reset by peer"));
            return Task.CompletedTask;
        }
    }
}
