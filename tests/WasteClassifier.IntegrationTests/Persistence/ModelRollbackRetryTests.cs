using System.Data.Common;
using System.Reflection;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using WasteClassifier.Components.Models;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// A rollback on the real PostgreSQL whose COMMIT went through but whose answer was lost: the retrying strategy runs it
/// again, and the rerun must recognise its own rollback rather than answer "already active" and announce nothing.
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

    private static ModelRecord Model(string version, string status, DateTime promotedAt) => new()
    {
        Version = version,
        Origin = "imported",
        CardJson = "{}",
        ArtifactPrefix = $"models/{version}/",
        CreatedAt = promotedAt,
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

    /// <summary>A broker that takes every publish and keeps the messages.</summary>
    public class RecordingPublishEndpoint : DispatchProxy
    {
        private List<object> _published = [];

        public static IPublishEndpoint Create(List<object> published)
        {
            var endpoint = Create<IPublishEndpoint, RecordingPublishEndpoint>();
            ((RecordingPublishEndpoint)(object)endpoint)._published = published;
            return endpoint;
        }

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            if (targetMethod?.Name != nameof(IPublishEndpoint.Publish) || targetMethod.ReturnType != typeof(Task)) throw new NotSupportedException(targetMethod?.Name);
            lock (_published) _published.Add(args![0]!);
            return Task.CompletedTask;
        }
    }
}
