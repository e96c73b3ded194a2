using System.Data.Common;
using MassTransit;
using MassTransit.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// A resend's claim on the real PostgreSQL (one UPDATE … FROM unnest … RETURNING) and on a SQLite file (read, then update,
/// under the write lock): of two senders that read the same due rows, one sends each; a failed send leaves them as read.
/// </summary>
public sealed class ResendClaimsTests
{
    [IntegrationFact]
    public Task Republish_OnPostgres_AnotherReplicaSendsTheRowsBetweenItsReadAndItsSend_EachRowSentOnce() => EachRowSentOnceAsync(DatabaseProviders.Postgres);

    [Fact]
    public Task Republish_OnSqlite_AnotherReplicaSendsTheRowsBetweenItsReadAndItsSend_EachRowSentOnce() => EachRowSentOnceAsync(DatabaseProviders.Sqlite);

    [IntegrationFact]
    public Task ClaimAndSend_OnPostgres_BrokerRefuses_RowsGetBackTheStampsTheyWereReadWith() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "resend-claims", FailedSendLeavesRowsAsReadAsync);

    [Fact]
    public Task ClaimAndSend_OnSqlite_BrokerRefuses_RowsGetBackTheStampsTheyWereReadWith() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Sqlite, "resend-claims", FailedSendLeavesRowsAsReadAsync);

    [IntegrationFact]
    public async Task ClaimAndSend_OnPostgres_ConnectionDropsAfterTheClaimCommitted_RetriedClaimStillWinsAndSends()
    {
        // The database commits the claim's UPDATE, then the answer is lost: EF's retry runs it again, and the rows already
        // hold the claim's stamp. Counted as lost, nothing was sent and the rows looked sent, due again only when stuck.
        var drop = new DropAfterClaimCommitted();
        await ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "resend-claims", async newContext =>
        {
            var now = DateTime.UtcNow;
            List<Guid> ids;
            await using (var db = newContext())
            {
                ids = [Add(db, ClassificationStatus.Queued, createdAt: now.AddMinutes(-1), publishedAt: null), Add(db, ClassificationStatus.Queued, createdAt: now.AddMinutes(-21), publishedAt: now.AddMinutes(-21))];
                await db.SaveChangesAsync();
            }
            await using var services = new ServiceCollection().AddMassTransitTestHarness().BuildServiceProvider();
            var harness = services.GetRequiredService<ITestHarness>();
            await harness.Start();
            await using (var db = newContext())
            {
                var rows = await db.Classifications.Include(c => c.Image).ToListAsync();
                drop.Armed = true;
                var sent = await new ClassifyCommandSender(db, harness.Bus, new MessagingOptions(), TimeProvider.System).ClaimAndSendAsync(rows, images: null, CancellationToken.None);

                Assert.Equal(1, drop.Dropped);
                Assert.Equal(ids.Order(), sent.Select(r => r.Id).Order());
            }
            Assert.Equal(ids.Order(), harness.Sent.Select<ClassifyImage>().Select(m => m.Context.Message.ClassificationId).Order());
        }, drop);
    }

    private static Task EachRowSentOnceAsync(string provider)
    {
        var race = new AfterFirstRead();
        return ProviderDatabases.WithDatabaseAsync(provider, "resend-claims", newContext => EachRowSentOnceAsync(newContext, race), race);
    }

    private static async Task EachRowSentOnceAsync(Func<ClassifierDbContext> newContext, AfterFirstRead race)
    {
        // Stuck (queued, processing) and never sent: the second replica's whole round runs after the first has read them.
        var now = DateTime.UtcNow;
        List<Guid> rows;
        await using (var db = newContext())
        {
            rows =
            [
                Add(db, ClassificationStatus.Queued, createdAt: now.AddMinutes(-21), publishedAt: now.AddMinutes(-21)),
                Add(db, ClassificationStatus.Processing, createdAt: now.AddMinutes(-21), publishedAt: now.AddMinutes(-21), startedAt: now.AddMinutes(-20)),
                Add(db, ClassificationStatus.Queued, createdAt: now.AddMinutes(-1), publishedAt: null),
            ];
            await db.SaveChangesAsync();
        }
        await using var services = new ServiceCollection()
            .AddMassTransitTestHarness()
            .AddScoped(_ => newContext())
            .AddSingleton(new MessagingOptions { Transport = MessagingTransports.RabbitMq })
            .AddSingleton(TimeProvider.System)
            .AddScoped<ClassifyCommandSender>()
            .BuildServiceProvider();
        var harness = services.GetRequiredService<ITestHarness>();
        await harness.Start();
        QueuedRepublisher Replica() => new(services.GetRequiredService<IServiceScopeFactory>(), new ConfigurationBuilder().Build(), TimeProvider.System,
            NullLogger<QueuedRepublisher>.Instance);
        var (first, second) = (Replica(), Replica());
        var sentBySecond = -1;
        race.Meanwhile = async () => sentBySecond = await second.RepublishAsync(CancellationToken.None);

        Assert.Equal(0, await first.RepublishAsync(CancellationToken.None));

        Assert.Equal(3, sentBySecond);
        Assert.Equal(rows.Order(), harness.Sent.Select<ClassifyImage>().Select(m => m.Context.Message.ClassificationId).Order());
    }

    private static async Task FailedSendLeavesRowsAsReadAsync(Func<ClassifierDbContext> newContext)
    {
        var now = DateTime.UtcNow;
        await using (var db = newContext())
        {
            Add(db, ClassificationStatus.Queued, createdAt: now.AddMinutes(-21), publishedAt: now.AddMinutes(-21));
            Add(db, ClassificationStatus.Queued, createdAt: now.AddMinutes(-1), publishedAt: null);
            await db.SaveChangesAsync();
        }
        Dictionary<Guid, DateTime?> read;
        await using (var db = newContext())
        {
            var rows = await db.Classifications.Include(c => c.Image).ToListAsync();
            read = rows.ToDictionary(r => r.Id, r => r.PublishedAt);
            var sender = new ClassifyCommandSender(db, new RefusingSendEndpoints(), new MessagingOptions(), TimeProvider.System);

            await Assert.ThrowsAsync<InvalidOperationException>(() => sender.ClaimAndSendAsync(rows, images: null, CancellationToken.None));
        }

        await using (var db = newContext())
            Assert.Equal(read, await db.Classifications.AsNoTracking().ToDictionaryAsync(r => r.Id, r => r.PublishedAt));
    }

    private static Guid Add(ClassifierDbContext db, string status, DateTime createdAt, DateTime? publishedAt, DateTime? startedAt = null)
    {
        var row = new Classification
        {
            Id = Guid.CreateVersion7(),
            Image = new StoredImage { Id = Guid.NewGuid(), ObjectKey = $"objects/{Guid.NewGuid():N}", ContentHash = Guid.NewGuid().ToString("N"), Format = "png", CreatedAt = createdAt },
            Status = status,
            CreatedAt = createdAt,
            PublishedAt = publishedAt,
            StartedAt = startedAt,
            Attempts = startedAt is null ? 0 : 1,
        };
        db.Classifications.Add(row);
        return row.Id;
    }

    /// <summary>Runs <see cref="Meanwhile"/> once, when the first query after it is set has had its rows read.</summary>
    private sealed class AfterFirstRead : DbCommandInterceptor
    {
        private int _done;

        public Func<Task>? Meanwhile { get; set; }

        public override async ValueTask<InterceptionResult> DataReaderClosingAsync(DbCommand command, DataReaderClosingEventData eventData, InterceptionResult result)
        {
            if (Meanwhile is { } meanwhile && Interlocked.Exchange(ref _done, 1) == 0) await meanwhile();
            return result;
        }
    }

    /// <summary>
    /// Once armed, lets the first claim (UPDATE … RETURNING) run to its commit, then fails it as a dropped connection does,
    /// an error EF's retry on PostgreSQL runs the statement again for.
    /// </summary>
    private sealed class DropAfterClaimCommitted : DbCommandInterceptor
    {
        public bool Armed { get; set; }

        public int Dropped { get; private set; }

        public override async ValueTask<DbDataReader> ReaderExecutedAsync(DbCommand command, CommandExecutedEventData eventData, DbDataReader result,
            CancellationToken cancellationToken = default)
        {
            if (!Armed || Dropped > 0 || !command.CommandText.StartsWith("UPDATE", StringComparison.Ordinal)) return result;
            Dropped++;
            // Read to its end: the statement is then committed.
            while (await result.ReadAsync(cancellationToken)) { }
            await result.DisposeAsync();
            throw new Npgsql.NpgsqlException("connection lost", new IOException("connection reset by peer"));
        }
    }
}
