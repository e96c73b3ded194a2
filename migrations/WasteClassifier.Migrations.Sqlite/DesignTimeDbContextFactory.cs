using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Migrations.Sqlite;

/// <summary>Lets <c>dotnet ef</c> build the context for this provider without starting a host.</summary>
public sealed class DesignTimeDbContextFactory : IDesignTimeDbContextFactory<ClassifierDbContext>
{
    public ClassifierDbContext CreateDbContext(string[] args)
    {
        var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
        var options = new DatabaseOptions { Provider = DatabaseProviders.Sqlite, ConnectionString = DesignTimeConnectionString };
        DatabaseExtensions.Configure(builder, options, Path.GetTempPath());
        return new ClassifierDbContext(builder.Options);
    }

    // Only used to generate migrations; no connection is opened.
    private const string DesignTimeConnectionString = "Data Source=design-time.db";
}
