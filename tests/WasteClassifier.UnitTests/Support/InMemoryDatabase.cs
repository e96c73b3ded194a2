using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Inference;
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
    public ClassifierDbContext NewContext(params IInterceptor[] interceptors) =>
        new(new DbContextOptionsBuilder<ClassifierDbContext>().UseSqlite(_connection).UseSnakeCaseNamingConvention().AddInterceptors(interceptors).Options);

    /// <summary>Registers a model version with a two-label card (no artifacts), promoted now when it is active.</summary>
    public async Task AddModelAsync(string version, string status)
    {
        Context.Models.Add(new ModelRecord
        {
            Version = version,
            Status = status,
            Origin = "test",
            ArtifactPrefix = ModelRegistry.PrefixFor(version),
            CardJson = JsonSerializer.Serialize(new ModelCard { Version = version, Labels = ["a", "b"], Onnx = "model.onnx", Input = new ModelInputSpec() },
                ModelCard.JsonOptions),
            CreatedAt = DateTime.UtcNow,
            PromotedAt = status == ModelStatus.Active ? DateTime.UtcNow : null,
        });
        await Context.SaveChangesAsync();
    }

    public void Dispose()
    {
        Context.Dispose();
        _connection.Dispose();
    }
}
