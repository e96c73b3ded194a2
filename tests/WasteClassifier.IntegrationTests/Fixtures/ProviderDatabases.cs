using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>
/// A migrated, empty database of one provider for one test (a fresh PostgreSQL database on the test server, or a SQLite
/// file in a temporary folder), removed afterwards. The test gets a factory of contexts, as separate processes would.
/// </summary>
public static class ProviderDatabases
{
    public static async Task WithDatabaseAsync(string provider, string name, Func<Func<ClassifierDbContext>, Task> test, IInterceptor? interceptor = null)
    {
        var folder = Directory.CreateTempSubdirectory($"{name}-");
        var options = new DatabaseOptions { Provider = provider };
        if (provider == DatabaseProviders.Postgres) options.ConnectionString = await TestServices.CreateDatabaseAsync(name.Replace('-', '_'));
        ClassifierDbContext NewContext()
        {
            var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
            DatabaseExtensions.Configure(builder, options, folder.FullName);
            if (interceptor is not null) builder.AddInterceptors(interceptor);
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
