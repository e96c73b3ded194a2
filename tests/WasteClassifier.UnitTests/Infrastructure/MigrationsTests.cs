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

    [Fact]
    public void PredictedClassIndex_IsBuiltWithoutBlockingWritesOnPostgres()
    {
        // classifications is the largest table a deployment has; a plain CREATE INDEX would hold its writes while it builds.
        using var db = new WasteClassifier.Migrations.Postgres.DesignTimeDbContextFactory().CreateDbContext([]);
        var assembly = db.GetService<IMigrationsAssembly>();
        var migration = assembly.CreateMigration(assembly.Migrations["20261201015823_ClassificationsPredictedClassIndex"],
            db.Database.ProviderName!);

        var commands = db.GetService<IMigrationsSqlGenerator>().Generate(migration.UpOperations, db.Model);

        var create = Assert.Single(commands, c => c.CommandText.Contains("CREATE INDEX CONCURRENTLY IF NOT EXISTS"));
        Assert.True(create.TransactionSuppressed, "PostgreSQL refuses a concurrent build inside a transaction");
        // An interrupted build's invalid index is dropped first (ConcurrentMigrationsTests runs it).
        Assert.Contains(commands.TakeWhile(c => c != create), c => c.CommandText.Contains("NOT i.indisvalid") && c.CommandText.Contains("DROP INDEX"));
    }
}
