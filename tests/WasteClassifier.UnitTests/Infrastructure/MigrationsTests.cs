using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.UnitTests.Infrastructure;

/// <summary>
/// A change to the EF model without its migration would leave every deployed database behind the code: both providers'
/// migrations must describe the current model (no connection is opened).
/// </summary>
public sealed class MigrationsTests
{
    public static TheoryData<string> Providers => [DatabaseProviders.Postgres, DatabaseProviders.Sqlite];

    [Theory]
    [MemberData(nameof(Providers))]
    public void Migrations_DescribeTheCurrentModel(string provider)
    {
        using var db = provider == DatabaseProviders.Postgres
            ? new WasteClassifier.Migrations.Postgres.DesignTimeDbContextFactory().CreateDbContext([])
            : new WasteClassifier.Migrations.Sqlite.DesignTimeDbContextFactory().CreateDbContext([]);

        Assert.False(db.Database.HasPendingModelChanges(),
            $"the {provider} migrations lag the model: add one as migrations/README.md says");
    }

    [Theory]
    [InlineData("20261201015823_ClassificationsPredictedClassIndex")]
    [InlineData("20261202015042_ClassificationsCompletedAtIdIndex")]
    [InlineData("20261202100000_IdempotentRequestsCreatedAtIndex")]
    [InlineData("20261202100800_ClassificationsSourceCompletedAtIdIndex")]
    [InlineData("20261202125212_ClassificationsFinishedWithoutSourceIndex")]
    [InlineData("20261202125355_ClassificationsSourceStatusCreatedAtIdIndex")]
    [InlineData("20261202124832_ClassificationsIdempotencyCreatedAtIndex")]
    [InlineData("20261202160554_ClassificationsWithoutSourceCreatedAtIdIndex")]
    [InlineData("20261202160915_ClassificationsWithoutSourceStatusCreatedAtIdIndex")]
    public void IndexOnAGrowingTable_IsBuiltWithoutBlockingWritesOnPostgres(string id)
    {
        // classifications is the largest table a deployment has (idempotent_requests grows with uploads); a plain CREATE INDEX
        // would hold their writes while it builds.
        using var db = new WasteClassifier.Migrations.Postgres.DesignTimeDbContextFactory().CreateDbContext([]);
        var assembly = db.GetService<IMigrationsAssembly>();
        var migration = assembly.CreateMigration(assembly.Migrations[id], db.Database.ProviderName!);

        var commands = db.GetService<IMigrationsSqlGenerator>().Generate(migration.UpOperations, db.Model);

        var create = Assert.Single(commands, c => c.CommandText.Contains("CREATE INDEX CONCURRENTLY IF NOT EXISTS"));
        Assert.True(create.TransactionSuppressed, "PostgreSQL refuses a concurrent build inside a transaction");
        // An interrupted build's invalid index is dropped first (ConcurrentMigrationsTests runs it).
        Assert.Contains(commands.TakeWhile(c => c != create), c => c.CommandText.Contains("NOT i.indisvalid") && c.CommandText.Contains("DROP INDEX"));
        // And no other statement takes the table's write lock for long: an index dropped is dropped concurrently.
        Assert.All(commands.Where(c => c.CommandText.TrimStart().StartsWith("DROP INDEX", StringComparison.Ordinal)),
            c => Assert.True(c.CommandText.Contains("CONCURRENTLY") && c.TransactionSuppressed, c.CommandText));
    }
}
