using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Api.Ingestion;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;
using static WasteClassifier.IntegrationTests.Fixtures.PostgresScratch;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// The Idempotency-Key of classification rows past <c>Api:IdempotencyRetentionHours</c>, on the real PostgreSQL: a request
/// under it is a new one (the old rows' key cleared before its insert, or the unique index refuses it with PostgreSQL's
/// error), and the sweep clears such keys.
/// </summary>
public sealed class ClassificationKeyRetentionTests
{
    private static readonly TimeSpan PastRetention = TimeSpan.FromHours(IdempotencyOptions.DefaultRetentionHours) + TimeSpan.FromMinutes(1);

    [IntegrationFact]
    public Task Submit_OnPostgres_KeyPastItsRetention_IsFreeForANewRequest() => WithDatabaseAsync(async (newContext, _, submitter) =>
    {
        var key = new IdempotencyKey("line-1", "batch-expiring");
        await using (var db = newContext()) await submitter(db, TimeProvider.System).SubmitAsync([Upload(0, Png(1))], "cam-a", key, CancellationToken.None);
        var later = new Later(PastRetention);

        SubmissionResult fresh, retry;
        await using (var db = newContext()) fresh = await submitter(db, later).SubmitAsync([Upload(0, Png(2))], "cam-a", key, CancellationToken.None);
        await using (var db = newContext()) retry = await submitter(db, later).SubmitAsync([Upload(0, Png(2))], "cam-a", key, CancellationToken.None);

        Assert.False(fresh.KeyReused);
        Assert.False(fresh.Replayed);
        Assert.True(retry.Replayed);
        Assert.Equal(fresh.Items.Select(i => i.Id), retry.Items.Select(i => i.Id));
        await using var check = newContext();
        Assert.Equal(2, await check.Classifications.CountAsync());
        Assert.Equal(fresh.Items[0].Id, (await check.Classifications.SingleAsync(c => c.IdempotencyKey != null)).Id);
    });

    [IntegrationFact]
    public Task Submit_OnPostgres_ExpiredKeyTakenByAnotherRequestFirst_AnsweredWithThatRequest() => WithDatabaseAsync(async (newContext, race, submitter) =>
    {
        // Two tries of one request under an expired key at once: both clear the old rows' key, and the later insert fails on
        // the unique index. That failure is answered with the earlier try's rows, not a 500.
        var key = new IdempotencyKey("line-1", "batch-raced");
        await using (var db = newContext()) await submitter(db, TimeProvider.System).SubmitAsync([Upload(0, Png(1))], "cam-a", key, CancellationToken.None);
        var later = new Later(PastRetention);
        SubmissionResult? winner = null;
        race.Arm(async () =>
        {
            await using var other = newContext();
            winner = await submitter(other, later).SubmitAsync([Upload(0, Png(2))], "cam-a", key, CancellationToken.None);
        });

        SubmissionResult result;
        await using (var db = newContext()) result = await submitter(db, later).SubmitAsync([Upload(0, Png(2))], "cam-a", key, CancellationToken.None);

        Assert.False(winner!.Replayed);
        Assert.True(result.Replayed);
        Assert.Equal(winner.Items.Select(i => i.Id), result.Items.Select(i => i.Id));
        await using var check = newContext();
        Assert.Equal(2, await check.Classifications.CountAsync());
    });

    [IntegrationFact]
    public Task Sweep_OnPostgres_ClearsTheKeysOfExpiredRequestsWholeInBatches_AndOnlyThose() => WithDatabaseAsync(async (newContext, _, submitter) =>
    {
        // Whole seconds: PostgreSQL keeps microseconds, and would round finer times the test sets.
        var made = DateTime.UtcNow.Date.AddDays(-2);
        async Task SubmitAsync(string key, DateTime at, params UploadedImage[] files)
        {
            await using var db = newContext();
            await submitter(db, new FixedClock(at)).SubmitAsync(files, null, new IdempotencyKey("", key), CancellationToken.None);
        }
        await SubmitAsync("older", made, Upload(0, Png(1)));
        await SubmitAsync("old-two", made.AddHours(1), Upload(0, Png(1)), Upload(1, Png(2)));
        await SubmitAsync("new", made.AddHours(1).AddMinutes(1), Upload(0, Png(1)));
        await using var services = new ServiceCollection().AddScoped(_ => newContext()).BuildServiceProvider();
        // Past the retention: "older", and the first of "old-two"'s rows, not its second (a microsecond younger: the cutoff
        // is its time, as PostgreSQL, which keeps microseconds, has no time between the two).
        var retention = new IdempotencyOptions(TimeSpan.FromHours(24));
        var sweeper = new IdempotencySweeper(services.GetRequiredService<IServiceScopeFactory>(), retention,
            new FixedClock(made.AddHours(1) + retention.Retention + TimeSpan.FromMicroseconds(1)), NullLogger<IdempotencySweeper>.Instance)
        { ClassificationBatch = 1 };

        Assert.Equal(3, await sweeper.SweepAsync(CancellationToken.None));

        await using var check = newContext();
        Assert.Equal("new", Assert.Single(await check.Classifications.Where(c => c.IdempotencyKey != null).ToListAsync()).IdempotencyKey);
        Assert.Equal(4, await check.Classifications.CountAsync());
    });

    [IntegrationFact]
    public Task SweepAndSubmit_OnPostgres_ClearingOneExpiredRequestAtOnce_BothFinishWithoutADeadlockError()
    {
        var deadlocks = new Deadlocks();
        return WithDatabaseAsync(async (newContext, _, submitter) =>
    {
        // The sweep clears an expired request's rows by key (in its plan's order, that of the key index or the table), a
        // retry under the key clears them by id (the primary key's order): a request's ids, version 7 made in one
        // millisecond, are in random order. Locking them in different orders, the two deadlocked, and PostgreSQL aborted one
        // after deadlock_timeout (EF's retry then hid it, a second late). Many rows a request, and the two UPDATEs let go
        // together (Deadlocks.Arm), so they overlap. Not a reproduction: without the id order it passed here too (at this
        // size PostgreSQL may read the ids in the table's order, the sweep's); it checks the locking statements finish.
        const int RowsPerRequest = 200;
        await using var services = new ServiceCollection().AddScoped(_ => newContext()).BuildServiceProvider();
        var sweeper = new IdempotencySweeper(services.GetRequiredService<IServiceScopeFactory>(), IdempotencyOptions.Default, TimeProvider.System,
            NullLogger<IdempotencySweeper>.Instance);
        await using (var db = newContext())
        {
            await db.Database.ExecuteSqlRawAsync("""
                INSERT INTO images (id, content_hash, content_type, created_at, file_name, format, height, object_key, size_bytes, width)
                VALUES ('00000000-0000-0000-0000-000000000001', 'old', 'image/png', now() - interval '2 days', 'a.png', 'png', 16, 'old', 1, 16)
                """);
        }
        for (var round = 0; round < 30; round++)
        {
            var key = new IdempotencyKey("", $"expired-{round}");
            var ids = Enumerable.Range(0, RowsPerRequest).Select(_ => Guid.CreateVersion7()).ToArray();
            await using (var db = newContext())
            {
                // As a submitter saved them 25 hours ago: index order is insertion order.
                await db.Database.ExecuteSqlAsync($"""
                    INSERT INTO classifications (id, image_id, status, idempotency_key, idempotency_scope, idempotency_fingerprint, idempotency_index, attempts, created_at)
                    SELECT u.id, '00000000-0000-0000-0000-000000000001', 'queued', {key.Value}, '', 'old', u.n - 1, 0, now() - interval '25 hours' + u.n * interval '1 microsecond'
                    FROM unnest({ids}) WITH ORDINALITY AS u(id, n) ORDER BY u.n
                    """);
            }
            deadlocks.Arm();
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var sweep = Task.Run(async () => { await start.Task; return await sweeper.SweepAsync(CancellationToken.None); });
            var submit = Task.Run(async () =>
            {
                await start.Task;
                await using var db = newContext();
                return await submitter(db, TimeProvider.System).SubmitAsync([Upload(0, Png((byte)round))], null, key, CancellationToken.None);
            });
            start.SetResult();
            await Task.WhenAll(sweep, submit);

            Assert.False(submit.Result.Replayed);
            await using var check = newContext();
            Assert.Equal(submit.Result.Items.Select(i => i.Id), await check.Classifications.Where(c => c.IdempotencyKey == key.Value).Select(c => c.Id).ToListAsync());
        }
        Assert.Equal(0, deadlocks.Count);
    }, deadlocks);
    }

    /// <summary>A fresh PostgreSQL database, a folder object store and submitters on it (one process's seen hashes), removed afterwards.</summary>
    private static Task WithDatabaseAsync(Func<Func<ClassifierDbContext>, RaceBeforeSave, Func<ClassifierDbContext, TimeProvider, ClassificationSubmitter>, Task> test,
        IInterceptor? interceptor = null)
    {
        var race = new RaceBeforeSave();
        var seen = new SeenContentHashes();
        var waiter = new ClassificationResultWaiter(new ServiceCollection().BuildServiceProvider().GetRequiredService<IServiceScopeFactory>(),
            NullLogger<ClassificationResultWaiter>.Instance);
        return PostgresScratch.WithDatabaseAsync("wc-key-retention", interceptor ?? race, (newContext, store) =>
        {
            ClassificationSubmitter NewSubmitter(ClassifierDbContext db, TimeProvider clock) => new(db,
                new ImageIntake(db, store, new UploadOptions(), seen, TimeProvider.System),
                new ClassifyCommandSender(db, new RefusingSendEndpoints(), new MessagingOptions(), TimeProvider.System),
                new DuplicateFrames(db, new IngestionOptions(), TimeProvider.System),
                waiter, clock, NullLogger<ClassificationSubmitter>.Instance);
            return test(newContext, race, NewSubmitter);
        });
    }

    /// <summary>Once armed, just before the next save of classifications, another request runs (its own save passes).</summary>
    private sealed class RaceBeforeSave : SaveChangesInterceptor
    {
        private Func<Task>? _race;

        public void Arm(Func<Task> race) => _race = race;

        public override async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result,
            CancellationToken cancellationToken = default)
        {
            if (_race is not { } race || !eventData.Context!.ChangeTracker.Entries<Classification>().Any()) return result;
            _race = null;
            await race();
            return result;
        }
    }

    /// <summary>
    /// Counts statements PostgreSQL aborted as deadlocked (40P01), each try: EF's retrying strategy hides them otherwise. Once
    /// armed, holds the first of the next two statements clearing keys until the second comes (up to 5 s), so they overlap.
    /// </summary>
    private sealed class Deadlocks : DbCommandInterceptor
    {
        private int _count;
        private int _arrived;
        private TaskCompletionSource? _gate;

        public int Count => _count;

        public void Arm()
        {
            _arrived = 0;
            _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        public override async ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(System.Data.Common.DbCommand command, CommandEventData eventData,
            InterceptionResult<int> result, CancellationToken cancellationToken = default)
        {
            if (_gate is { } gate && command.CommandText.Contains("idempotency_key = NULL", StringComparison.Ordinal))
            {
                var arrived = Interlocked.Increment(ref _arrived);
                if (arrived == 2) gate.TrySetResult();
                else if (arrived == 1) await Task.WhenAny(gate.Task, Task.Delay(TimeSpan.FromSeconds(5), cancellationToken));
            }
            return result;
        }

        public override Task CommandFailedAsync(System.Data.Common.DbCommand command, CommandErrorEventData eventData, CancellationToken cancellationToken = default)
        {
            if (eventData.Exception is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.DeadlockDetected }) Interlocked.Increment(ref _count);
            return Task.CompletedTask;
        }
    }

    /// <summary>The system clock moved on by <paramref name="by"/>.</summary>
    private sealed class Later(TimeSpan by) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + by;
    }

    private sealed class FixedClock(DateTime now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => new(now);
    }
}
