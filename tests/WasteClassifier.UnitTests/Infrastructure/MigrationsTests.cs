using Microsoft.EntityFrameworkCore;
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
}
