using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// A worker's claim of a batch on the real PostgreSQL (one UPDATE … RETURNING) and on SQLite (read, then update): both
/// must mark the same rows, return them as EF Core reads them, and leave them tracked for the results' save.
/// </summary>
public sealed class ClassificationClaimsTests
{
    private static readonly DateTime StartedAt = new(2026, 11, 29, 12, 0, 0, DateTimeKind.Utc);
    private const int MaxAttempts = 3;

    [IntegrationFact]
    public Task Claim_OnPostgres_MarksTheUnfinishedRowsAndReportsTheMissing() => WithDatabaseAsync(DatabaseProviders.Postgres, ClaimMarksTheUnfinishedRowsAsync);

    [Fact]
    public Task Claim_OnSqlite_MarksTheUnfinishedRowsAndReportsTheMissing() => WithDatabaseAsync(DatabaseProviders.Sqlite, ClaimMarksTheUnfinishedRowsAsync);

    [IntegrationFact]
    public Task Claim_OnPostgres_ReturnsRowsAsEfCoreReadsThemAndTheSaveWritesOnlyChanges() => WithDatabaseAsync(DatabaseProviders.Postgres, ClaimedRowsAreTrackedAsync);

    [Fact]
    public Task Claim_OnSqlite_ReturnsRowsAsEfCoreReadsThemAndTheSaveWritesOnlyChanges() => WithDatabaseAsync(DatabaseProviders.Sqlite, ClaimedRowsAreTrackedAsync);

    [IntegrationFact]
    public Task Save_OnPostgres_OlderClaimSavesLast_IsRefusedAndTheLaterClaimsResultKept() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, OlderClaimCannotOverwriteAsync);

    [Fact]
    public Task Save_OnSqlite_OlderClaimSavesLast_IsRefusedAndTheLaterClaimsResultKept() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, OlderClaimCannotOverwriteAsync);

    [IntegrationFact]
    public Task SaveClaimedResults_OnPostgres_RowsClaimedAgain_AreLeftToTheLaterClaimAndTheRestSaved() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, SupersededRowsAreDroppedAsync);

    [Fact]
    public Task SaveClaimedResults_OnSqlite_RowsClaimedAgain_AreLeftToTheLaterClaimAndTheRestSaved() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, SupersededRowsAreDroppedAsync);

    [IntegrationFact]
    public Task Claim_OnPostgres_RowClaimedMaxAttemptsTimes_IsFailedInsteadOfClaimed() => WithDatabaseAsync(DatabaseProviders.Postgres, GivesUpAfterMaxAttemptsAsync);

    [Fact]
    public Task Claim_OnSqlite_RowClaimedMaxAttemptsTimes_IsFailedInsteadOfClaimed() => WithDatabaseAsync(DatabaseProviders.Sqlite, GivesUpAfterMaxAttemptsAsync);

    [Fact]
    public async Task Claim_OnSqlite_ResultCommittedBetweenReadAndUpdate_IsNeverReopened()
    {
        var race = new CommitBeforeClaimUpdate();
        await WithDatabaseAsync(DatabaseProviders.Sqlite, async newContext =>
        {
            await using (var db = newContext())
            {
                race.Id = Add(db, Image("e"), ClassificationStatus.Queued, attempts: 0);
                await db.SaveChangesAsync();
            }

            await using (var db = newContext())
            {
                var claim = await db.ClaimAsync([race.Id], "worker-7", StartedAt, MaxAttempts, CancellationToken.None);
                Assert.True(race.Tried);
                await using var reader = newContext();
                var row = await reader.Classifications.AsNoTracking().SingleAsync(c => c.Id == race.Id);
                if (race.Committed)
                {
                    // The other worker's result came first: it stays, and this claim holds nothing.
                    Assert.Equal((ClassificationStatus.Completed, "glass", 0), (row.Status, row.PredictedClass, row.Attempts));
                }
                else
                {
                    // The claim held the write lock from its read on, so the other commit waited: a clean claim.
                    Assert.Equal((ClassificationStatus.Processing, 1, "worker-7"), (row.Status, row.Attempts, row.WorkerId));
                    Assert.Equal([race.Id], claim.Claimed.Select(r => r.Id));
                }
            }
        }, race);
    }

    private static async Task GivesUpAfterMaxAttemptsAsync(Func<ClassifierDbContext> newContext)
    {
        Guid last, exhausted;
        await using (var db = newContext())
        {
            // Redelivered after its batch stopped the worker each time: one claim left, and none.
            last = Add(db, Image("g"), ClassificationStatus.Processing, attempts: MaxAttempts - 1);
            exhausted = Add(db, Image("h"), ClassificationStatus.Processing, attempts: MaxAttempts);
            await db.SaveChangesAsync();
        }

        await using (var db = newContext())
        {
            var claim = await db.ClaimAsync([last, exhausted], "worker-7", StartedAt, MaxAttempts, CancellationToken.None);
            var returned = claim.Claimed.ToDictionary(r => r.Id);
            Assert.Equal((ClassificationStatus.Processing, MaxAttempts, (string?)null), (returned[last].Status, returned[last].Attempts, returned[last].ErrorCode));
            Assert.Equal((ClassificationStatus.Failed, MaxAttempts + 1, ClassificationClaims.TooManyAttempts, StartedAt),
                (returned[exhausted].Status, returned[exhausted].Attempts, returned[exhausted].ErrorCode, returned[exhausted].CompletedAt));
            Assert.Equal(ClassificationClaims.TooManyAttemptsMessage(MaxAttempts), returned[exhausted].Error);
            Assert.Equal(EntityState.Unchanged, db.Entry(returned[exhausted]).State);
        }

        await using (var db = newContext())
        {
            var rows = await db.Classifications.AsNoTracking().ToDictionaryAsync(r => r.Id);
            Assert.Equal((ClassificationStatus.Processing, MaxAttempts, null, null), (rows[last].Status, rows[last].Attempts, rows[last].ErrorCode, rows[last].CompletedAt));
            Assert.Equal((ClassificationStatus.Failed, MaxAttempts + 1, ClassificationClaims.TooManyAttempts, StartedAt, "worker-7"),
                (rows[exhausted].Status, rows[exhausted].Attempts, rows[exhausted].ErrorCode, rows[exhausted].CompletedAt, rows[exhausted].WorkerId));
            Assert.Contains("claimed 3 times", rows[exhausted].Error);
        }
    }

    /// <summary>
    /// Two claims of one row (a duplicate delivery while the first worker still runs): the older claim's save, coming
    /// last, must not replace the later claim's result; it fails as a concurrency conflict, which the worker drops.
    /// </summary>
    private static async Task OlderClaimCannotOverwriteAsync(Func<ClassifierDbContext> newContext)
    {
        Guid id;
        await using (var db = newContext())
        {
            id = Add(db, Image("f"), ClassificationStatus.Queued, attempts: 0);
            await db.SaveChangesAsync();
        }

        await using var older = newContext();
        await using var later = newContext();
        var olderRow = (await older.ClaimAsync([id], "worker-old", StartedAt, MaxAttempts, CancellationToken.None)).Claimed.Single();
        var laterRow = (await later.ClaimAsync([id], "worker-new", StartedAt.AddSeconds(1), MaxAttempts, CancellationToken.None)).Claimed.Single();
        Assert.Equal((1, 2), (olderRow.Attempts, laterRow.Attempts));

        laterRow.Status = ClassificationStatus.Completed;
        laterRow.PredictedClass = "glass";
        await later.SaveChangesAsync();
        olderRow.Status = ClassificationStatus.Failed;
        olderRow.ErrorCode = "corrupt_image";
        olderRow.WorkerId = "worker-old";
        await Assert.ThrowsAsync<DbUpdateConcurrencyException>(() => older.SaveChangesAsync());

        await using (var db = newContext())
        {
            var saved = await db.Classifications.AsNoTracking().SingleAsync(c => c.Id == id);
            Assert.Equal((ClassificationStatus.Completed, "glass", (string?)null, "worker-new", 2),
                (saved.Status, saved.PredictedClass, saved.ErrorCode, saved.WorkerId, saved.Attempts));
        }
    }

    /// <summary>
    /// A batch of four whose first and third rows were claimed again by a duplicate delivery, one of them finished by it
    /// already: the batch's save, as the worker makes it, keeps the later claims' rows and saves its own two.
    /// </summary>
    private static async Task SupersededRowsAreDroppedAsync(Func<ClassifierDbContext> newContext)
    {
        List<Guid> ids;
        await using (var db = newContext())
        {
            ids = Enumerable.Range(0, 4).Select(i => Add(db, Image($"{(char)('i' + i)}"), ClassificationStatus.Queued, attempts: 0)).ToList();
            await db.SaveChangesAsync();
        }

        await using var older = newContext();
        var batch = (await older.ClaimAsync(ids, "worker-old", StartedAt, MaxAttempts, CancellationToken.None)).Claimed;
        await using (var later = newContext())
        {
            var taken = (await later.ClaimAsync([ids[0], ids[2]], "worker-new", StartedAt.AddSeconds(1), MaxAttempts, CancellationToken.None)).Claimed;
            var finished = taken.Single(r => r.Id == ids[2]);
            (finished.Status, finished.PredictedClass) = (ClassificationStatus.Completed, "glass");
            await later.SaveChangesAsync();
        }
        foreach (var row in batch) (row.Status, row.PredictedClass) = (ClassificationStatus.Completed, "metal");

        var superseded = await older.SaveClaimedResultsAsync(CancellationToken.None);

        Assert.Equal(new[] { ids[0], ids[2] }.Order(), superseded.Order());
        await using (var db = newContext())
        {
            var rows = await db.Classifications.AsNoTracking().ToDictionaryAsync(r => r.Id);
            Assert.Equal((ClassificationStatus.Processing, (string?)null, "worker-new", 2), (rows[ids[0]].Status, rows[ids[0]].PredictedClass, rows[ids[0]].WorkerId, rows[ids[0]].Attempts));
            Assert.Equal((ClassificationStatus.Completed, "glass", "worker-new", 2), (rows[ids[2]].Status, rows[ids[2]].PredictedClass, rows[ids[2]].WorkerId, rows[ids[2]].Attempts));
            foreach (var id in new[] { ids[1], ids[3] })
                Assert.Equal((ClassificationStatus.Completed, "metal", "worker-old", 1), (rows[id].Status, rows[id].PredictedClass, rows[id].WorkerId, rows[id].Attempts));
        }
    }

    /// <summary>
    /// Right before the claim's UPDATE, another worker's result is committed on its own connection (waiting at most a
    /// second for SQLite's lock): the window between the read-then-update claim's two statements.
    /// </summary>
    private sealed class CommitBeforeClaimUpdate : DbCommandInterceptor
    {
        public Guid Id { get; set; }
        public bool Tried { get; private set; }
        public bool Committed { get; private set; }

        public override async ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(
            DbCommand command, CommandEventData eventData,
            InterceptionResult<int> result, CancellationToken cancellationToken = default)
        {
            // Once, at the claim's UPDATE (migrations run before the row exists).
            if (Id == Guid.Empty || Tried || !command.CommandText.TrimStart().StartsWith("UPDATE", StringComparison.OrdinalIgnoreCase)) return result;
            Tried = true;
            var connection = new SqliteConnectionStringBuilder(command.Connection!.ConnectionString) { DefaultTimeout = 1 };
            await using var other = new ClassifierDbContext(new DbContextOptionsBuilder<ClassifierDbContext>()
                .UseSqlite(connection.ConnectionString).UseSnakeCaseNamingConvention().Options);
            try
            {
                await other.Classifications.Where(c => c.Id == Id).ExecuteUpdateAsync(set => set
                    .SetProperty(c => c.Status, ClassificationStatus.Completed)
                    .SetProperty(c => c.PredictedClass, "glass"), cancellationToken);
                Committed = true;
            }
            catch (SqliteException e) when (e.SqliteErrorCode == SQLitePCL.raw.SQLITE_BUSY)
            {
                // The claim holds the write lock.
            }
            return result;
        }
    }

    private static async Task ClaimMarksTheUnfinishedRowsAsync(Func<ClassifierDbContext> newContext)
    {
        Guid queued, processing, completed, failed;
        var missing = Guid.NewGuid();
        await using (var db = newContext())
        {
            var shared = Image("a");
            queued = Add(db, shared, ClassificationStatus.Queued, attempts: 0);
            // Redelivered after a worker died mid-batch: claimed again, one more attempt.
            processing = Add(db, shared, ClassificationStatus.Processing, attempts: 1);
            completed = Add(db, Image("b"), ClassificationStatus.Completed, attempts: 1);
            failed = Add(db, Image("c"), ClassificationStatus.Failed, attempts: 1);
            await db.SaveChangesAsync();
        }

        await using (var db = newContext())
        {
            var claim = await db.ClaimAsync([queued, processing, completed, failed, missing], "worker-7", StartedAt, MaxAttempts, CancellationToken.None);

            Assert.Equal(new[] { queued, processing }.Order(), claim.Claimed.Select(r => r.Id).Order());
            Assert.Equal([missing], claim.Missing);
            Assert.All(claim.Claimed, row =>
            {
                Assert.Equal(ClassificationStatus.Processing, row.Status);
                Assert.Equal("worker-7", row.WorkerId);
                Assert.Equal(StartedAt, row.StartedAt);
                Assert.Equal("sha256/aa/a", row.Image!.ObjectKey);
            });
            // Two rows of one image share its instance, as an EF Core query gives them.
            Assert.Same(claim.Claimed[0].Image, claim.Claimed[1].Image);
        }

        await using (var db = newContext())
        {
            var rows = await db.Classifications.AsNoTracking().ToDictionaryAsync(r => r.Id);
            Assert.Equal((ClassificationStatus.Processing, 1, "worker-7"), (rows[queued].Status, rows[queued].Attempts, rows[queued].WorkerId));
            Assert.Equal((ClassificationStatus.Processing, 2, "worker-7"), (rows[processing].Status, rows[processing].Attempts, rows[processing].WorkerId));
            Assert.Equal(StartedAt, rows[queued].StartedAt);
            // Finished rows are not touched.
            Assert.Equal((ClassificationStatus.Completed, 1, null), (rows[completed].Status, rows[completed].Attempts, rows[completed].WorkerId));
            Assert.Equal((ClassificationStatus.Failed, 1, null), (rows[failed].Status, rows[failed].Attempts, rows[failed].WorkerId));
        }
    }

    private static async Task ClaimedRowsAreTrackedAsync(Func<ClassifierDbContext> newContext)
    {
        Guid id;
        await using (var db = newContext())
        {
            id = Add(db, Image("d"), ClassificationStatus.Queued, attempts: 0);
            await db.SaveChangesAsync();
        }

        await using (var db = newContext())
        {
            var row = (await db.ClaimAsync([id], "worker-7", StartedAt, MaxAttempts, CancellationToken.None)).Claimed.Single();
            await using (var reader = newContext())
            {
                // Every column, the image's included, as EF Core's own query materializes it.
                var read = await reader.Classifications.Include(c => c.Image).AsNoTracking().SingleAsync(c => c.Id == id);
                foreach (var property in typeof(Classification).GetProperties().Where(p => p.Name != nameof(Classification.Image)))
                    Assert.Equal(property.GetValue(read), property.GetValue(row));
                foreach (var property in typeof(StoredImage).GetProperties())
                    Assert.Equal(property.GetValue(read.Image), property.GetValue(row.Image));
            }

            Assert.Equal(EntityState.Unchanged, db.Entry(row).State);
            Assert.Equal(EntityState.Unchanged, db.Entry(row.Image!).State);
            row.Status = ClassificationStatus.Completed;
            row.PredictedClass = "glass";
            db.ChangeTracker.DetectChanges();
            Assert.Equal([nameof(Classification.PredictedClass), nameof(Classification.Status)],
                db.Entry(row).Properties.Where(p => p.IsModified).Select(p => p.Metadata.Name).Order());
            await db.SaveChangesAsync();
        }

        await using (var db = newContext())
        {
            var saved = await db.Classifications.AsNoTracking().SingleAsync(c => c.Id == id);
            Assert.Equal((ClassificationStatus.Completed, "glass", "camera-3", 1), (saved.Status, saved.PredictedClass, saved.Source, saved.Attempts));
        }
    }

    private static StoredImage Image(string name) => TestRows.Image(name, StartedAt.AddMinutes(-5));

    private static Guid Add(ClassifierDbContext db, StoredImage image, string status, int attempts)
    {
        var row = new Classification
        {
            Id = Guid.CreateVersion7(),
            Image = image,
            Source = "camera-3",
            Status = status,
            Attempts = attempts,
            CreatedAt = StartedAt.AddSeconds(-3),
            PublishedAt = StartedAt.AddSeconds(-2),
        };
        db.Classifications.Add(row);
        return row.Id;
    }

    /// <summary>A fresh, migrated database of the provider, configured as the services configure theirs, for one test.</summary>
    private static Task WithDatabaseAsync(string provider, Func<Func<ClassifierDbContext>, Task> test, IInterceptor? interceptor = null) =>
        ProviderDatabases.WithDatabaseAsync(provider, "wc-claims", test, interceptor);
}
