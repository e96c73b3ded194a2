using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.UnitTests.Support;

/// <summary>The service's schema on an in-memory SQLite database that lives as long as this object.</summary>
public sealed class InMemoryDatabase : IDisposable
{
    private readonly SqliteConnection _connection = new("Data Source=:memory:");

    public InMemoryDatabase()
    {
        _connection.Open();
        Context = NewContext();
        Context.Database.EnsureCreated();
    }

    public ClassifierDbContext Context { get; }

    /// <summary>Another context on the same database (another worker's, say); the caller disposes it.</summary>
    public ClassifierDbContext NewContext() =>
        new(new DbContextOptionsBuilder<ClassifierDbContext>().UseSqlite(_connection).UseSnakeCaseNamingConvention().Options);

    public void Dispose()
    {
        Context.Dispose();
        _connection.Dispose();
    }
}
