using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Components.Models;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Components.Observability;

/// <summary>
/// Reads the classifications table (no rows: <c>LIMIT 0</c>), so a database that accepts connections but lacks the
/// schema (migrations not applied) is not ready: every request would fail there.
/// </summary>
public sealed class DatabaseHealthCheck(ClassifierDbContext db) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var entity = db.Model.FindEntityType(typeof(Classification))!;
        var table = db.GetService<ISqlGenerationHelper>().DelimitIdentifier(entity.GetTableName()!, entity.GetSchema());
        try
        {
            // One statement on the context's connection, outside EF's retry strategy: a probe answers now; the next one tries again.
            await db.Database.OpenConnectionAsync(cancellationToken);
            await using var command = db.Database.GetDbConnection().CreateCommand();
            command.CommandText = $"SELECT 1 FROM {table} LIMIT 0";
            await command.ExecuteNonQueryAsync(cancellationToken);
            return HealthCheckResult.Healthy(db.Database.ProviderName);
        }
        catch (DbException e)
        {
            return HealthCheckResult.Unhealthy($"the database cannot be queried: {e.Message}");
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }
    }
}

public sealed class ObjectStoreHealthCheck(IObjectStore store) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await store.CheckAsync(cancellationToken);
            return HealthCheckResult.Healthy(store.GetType().Name);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return HealthCheckResult.Unhealthy(e.Message);
        }
    }
}

/// <summary>
/// In the embedded default the in-process worker's model must be loaded; an API-only process has none to check. A worker
/// that could not load the promoted model and still serves another is degraded: it classifies, with the wrong version.
/// </summary>
public sealed class ModelHealthCheck(IServiceProvider services) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var provider = services.GetService<IModelProvider>();
        if (provider is null) return Task.FromResult(HealthCheckResult.Healthy("no model in this process (workers classify)"));
        if (provider.LoadedCard is not { } card) return Task.FromResult(HealthCheckResult.Unhealthy("the model is not loaded yet"));
        if (provider is RegistryModelProvider { LoadFailure: { } failure } && failure.Version != card.Version)
            return Task.FromResult(HealthCheckResult.Degraded(
                $"serving {card.Version}, not the active model {failure.Version}, which failed to load: {failure.Reason}",
                data: new Dictionary<string, object> { ["loaded_version"] = card.Version, ["active_version"] = failure.Version }));
        return Task.FromResult(HealthCheckResult.Healthy(card.Version));
    }
}
