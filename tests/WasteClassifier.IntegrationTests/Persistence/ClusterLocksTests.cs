using Microsoft.EntityFrameworkCore;
using Npgsql;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// On the real PostgreSQL a cluster lock makes a second process wait until the first one's transaction ends: what keeps
/// two trainers from claiming two jobs at once, and two promotions from leaving two active models.
/// </summary>
public sealed class ClusterLocksTests
{
    [IntegrationFact]
    public async Task TakeAsync_OnPostgres_SecondTransactionWaitsForTheFirstToCommit()
    {
        var connectionString = await TestServices.CreateDatabaseAsync("wc_locks");
        try
        {
            await using var first = NewContext(connectionString);
            await using var second = NewContext(connectionString);
            await using var firstTransaction = await first.Database.BeginTransactionAsync();
            await ClusterLocks.TakeAsync(first, ClusterLocks.TrainingJobClaims, CancellationToken.None);

            await using var secondTransaction = await second.Database.BeginTransactionAsync();
            var waiting = ClusterLocks.TakeAsync(second, ClusterLocks.TrainingJobClaims, CancellationToken.None);
            // The server says the second one waits for the lock: after a fixed wait instead, on a loaded machine, its request
            // might not have reached the server yet, and the check below proved nothing.
            await using (var observer = new NpgsqlConnection(connectionString))
            {
                await observer.OpenAsync();
                await using var ungranted = new NpgsqlCommand(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    observer);
                var deadline = DateTime.UtcNow.AddSeconds(30);
                while ((long)(await ungranted.ExecuteScalarAsync())! == 0 && !waiting.IsCompleted && DateTime.UtcNow < deadline) await Task.Delay(20);
                Assert.Equal(1L, (long)(await ungranted.ExecuteScalarAsync())!);
            }
            Assert.False(waiting.IsCompleted);
            // Another lock is not held up by this one.
            await using (var third = NewContext(connectionString))
            await using (await third.Database.BeginTransactionAsync())
                await ClusterLocks.TakeAsync(third, ClusterLocks.ModelPromotions, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

            await firstTransaction.CommitAsync();
            await waiting.WaitAsync(TimeSpan.FromSeconds(30));
            await secondTransaction.CommitAsync();
        }
        finally
        {
            await TestServices.DropDatabaseAsync(connectionString);
        }
    }

    [Fact]
    public async Task TakeAsync_OutsideATransaction_Refused()
    {
        var folder = Directory.CreateTempSubdirectory("wc-locks-");
        try
        {
            var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
            DatabaseExtensions.Configure(builder, new DatabaseOptions { Provider = DatabaseProviders.Sqlite }, folder.FullName);
            await using var db = new ClassifierDbContext(builder.Options);
            await Assert.ThrowsAsync<InvalidOperationException>(() => ClusterLocks.TakeAsync(db, ClusterLocks.ModelPromotions, CancellationToken.None));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            folder.Delete(recursive: true);
        }
    }

    private static ClassifierDbContext NewContext(string connectionString)
    {
        var builder = new DbContextOptionsBuilder<ClassifierDbContext>();
        DatabaseExtensions.Configure(builder, new DatabaseOptions { Provider = DatabaseProviders.Postgres, ConnectionString = connectionString }, Path.GetTempPath());
        return new ClassifierDbContext(builder.Options);
    }
}
