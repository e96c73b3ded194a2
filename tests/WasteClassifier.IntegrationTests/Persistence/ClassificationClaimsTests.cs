using Microsoft.EntityFrameworkCore;
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

    [IntegrationFact]
    public Task Claim_OnPostgres_MarksTheUnfinishedRowsAndReportsTheMissing() => WithDatabaseAsync(DatabaseProviders.Postgres, ClaimMarksTheUnfinishedRowsAsync);

    [Fact]
    public Task Claim_OnSqlite_MarksTheUnfinishedRowsAndReportsTheMissing() => WithDatabaseAsync(DatabaseProviders.Sqlite, ClaimMarksTheUnfinishedRowsAsync);

    [IntegrationFact]
    public Task Claim_OnPostgres_ReturnsRowsAsEfCoreReadsThemAndTheSaveWritesOnlyChanges() => WithDatabaseAsync(DatabaseProviders.Postgres, ClaimedRowsAreTrackedAsync);

    [Fact]
    public Task Claim_OnSqlite_ReturnsRowsAsEfCoreReadsThemAndTheSaveWritesOnlyChanges() => WithDatabaseAsync(DatabaseProviders.Sqlite, ClaimedRowsAreTrackedAsync);

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
            var claim = await db.ClaimAsync([queued, processing, completed, failed, missing], "worker-7", StartedAt, CancellationToken.None);

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
            var row = (await db.ClaimAsync([id], "worker-7", StartedAt, CancellationToken.None)).Claimed.Single();
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

    private static StoredImage Image(string name) => new()
    {
        Id = Guid.NewGuid(),
        ObjectKey = $"sha256/{name}{name}/{name}",
        ContentHash = new string(name[0], 64),
        SizeBytes = 1234,
        ContentType = "image/jpeg",
        FileName = $"{name}.jpg",
        Format = "jpeg",
        Width = 640,
        Height = 480,
        CreatedAt = StartedAt.AddMinutes(-5),
    };

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
    private static async Task WithDatabaseAsync(string provider, Func<Func<ClassifierDbContext>, Task> test)
    {
        var folder = Directory.CreateTempSubdirectory("wc-claims-");
        var options = new DatabaseOptions { Provider = provider };
        if (provider == DatabaseProviders.Postgres) options.ConnectionString = await TestServices.CreateDatabaseAsync("wc_claims");
        ClassifierDbContext NewContext()
        {
            var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
            DatabaseExtensions.Configure(builder, options, folder.FullName);
            return new ClassifierDbContext(builder.Options);
        }
        try
        {
            await using (var db = NewContext()) await db.Database.MigrateAsync();
            await test(NewContext);
        }
        finally
        {
            if (options.ConnectionString is { } connectionString) await TestServices.DropDatabaseAsync(connectionString);
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            folder.Delete(recursive: true);
        }
    }
}
