using Microsoft.EntityFrameworkCore;
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
            await Task.Delay(TimeSpan.FromSeconds(1));
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
