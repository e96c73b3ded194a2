using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Observability;

/// <summary>The readiness check of the database: ready only when the schema is there, not merely when it accepts connections.</summary>
public sealed class ComponentHealthChecksTests
{
    [Fact]
    public async Task Database_SqliteWithoutMigrations_NotReadyUntilMigrated()
    {
        var folder = Directory.CreateTempSubdirectory("wc-health-");
        try
        {
            await AssertNotReadyUntilMigratedAsync(new DatabaseOptions { Provider = DatabaseProviders.Sqlite }, folder.FullName);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            folder.Delete(recursive: true);
        }
    }

    [IntegrationFact]
    public async Task Database_PostgresWithoutMigrations_NotReadyUntilMigrated()
    {
        var connectionString = await TestServices.CreateDatabaseAsync("wc_health");
        try
        {
            await AssertNotReadyUntilMigratedAsync(new DatabaseOptions { Provider = DatabaseProviders.Postgres, ConnectionString = connectionString }, Path.GetTempPath());
        }
        finally
        {
            Npgsql.NpgsqlConnection.ClearAllPools();
            await TestServices.DropDatabaseAsync(connectionString);
        }
    }

    [IntegrationFact]
    public async Task Database_QueryHeldPastTheCommandTimeout_DescribedAsNoAnswerNotMissingMigrations()
    {
        var connectionString = await TestServices.CreateDatabaseAsync("wc_health");
        try
        {
            var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
            DatabaseExtensions.Configure(builder, new DatabaseOptions { Provider = DatabaseProviders.Postgres, ConnectionString = connectionString }, Path.GetTempPath());
            await using (var migrating = new ClassifierDbContext(builder.Options)) await migrating.Database.MigrateAsync();

            // Another session holds the table (a long migration, a VACUUM FULL): the check's read waits on the lock.
            await using var holder = new Npgsql.NpgsqlConnection(connectionString);
            await holder.OpenAsync();
            await using var transaction = await holder.BeginTransactionAsync();
            await using (var lockTable = new Npgsql.NpgsqlCommand("LOCK TABLE classifications IN ACCESS EXCLUSIVE MODE", holder, transaction))
                await lockTable.ExecuteNonQueryAsync();

            var checking = new DbContextOptionsBuilder<ClassifierDbContext>();
            DatabaseExtensions.Configure(checking, new DatabaseOptions
            {
                Provider = DatabaseProviders.Postgres,
                ConnectionString = new Npgsql.NpgsqlConnectionStringBuilder(connectionString) { CommandTimeout = 1 }.ConnectionString,
            }, Path.GetTempPath());
            await using var db = new ClassifierDbContext(checking.Options);

            var result = await new DatabaseHealthCheck(db).CheckHealthAsync(new HealthCheckContext());

            Assert.Equal(HealthStatus.Unhealthy, result.Status);
            Assert.StartsWith("the database did not answer the query within 1 s (NpgsqlException", result.Description);
            Assert.Contains("timeout", result.Description);
            Assert.DoesNotContain("migrations", result.Description);
        }
        finally
        {
            Npgsql.NpgsqlConnection.ClearAllPools();
            await TestServices.DropDatabaseAsync(connectionString);
        }
    }

    [Fact]
    public async Task Database_Unreachable_DescribedWithoutHostOrCredentials()
    {
        // A port nothing listens on: Npgsql's message names the host and port ("Failed to connect to 127.0.0.1:port").
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        const string password = "s3cret-db-password";
        var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
        DatabaseExtensions.Configure(builder, new DatabaseOptions
        {
            Provider = DatabaseProviders.Postgres,
            ConnectionString = $"Host=127.0.0.1;Port={port};Username=wc_secret_user;Password={password};Timeout=5",
        }, Path.GetTempPath());
        await using var db = new ClassifierDbContext(builder.Options);

        var result = await new DatabaseHealthCheck(db).CheckHealthAsync(new HealthCheckContext());

        Assert.Equal(HealthStatus.Unhealthy, result.Status);
        Assert.StartsWith("the database is unreachable (NpgsqlException", result.Description);
        Assert.DoesNotContain("127.0.0.1", result.Description);
        Assert.DoesNotContain(port.ToString(), result.Description);
        Assert.DoesNotContain(password, result.Description);
        Assert.DoesNotContain("wc_secret_user", result.Description);
    }

    private static async Task AssertNotReadyUntilMigratedAsync(DatabaseOptions options, string dataDirectory)
    {
        var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
        DatabaseExtensions.Configure(builder, options, dataDirectory);
        await using var db = new ClassifierDbContext(builder.Options);
        // An empty database, as with Database__MigrateOnStartup=false (SQLite creates its file on the first open).
        await db.Database.OpenConnectionAsync();
        await db.Database.CloseConnectionAsync();
        Assert.True(await db.Database.CanConnectAsync()); // what the check used to settle for

        var before = await new DatabaseHealthCheck(db).CheckHealthAsync(new HealthCheckContext());
        await db.Database.MigrateAsync();
        var after = await new DatabaseHealthCheck(db).CheckHealthAsync(new HealthCheckContext());

        Assert.Equal(HealthStatus.Unhealthy, before.Status);
        Assert.Contains("classifications", before.Description);
        Assert.Contains("are the migrations applied?", before.Description);
        Assert.Equal(HealthStatus.Healthy, after.Status);
    }
}
