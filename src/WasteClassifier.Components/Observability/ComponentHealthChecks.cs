using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Components.Models;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Components.Observability;

public sealed class DatabaseHealthCheck(ClassifierDbContext db) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        await db.Database.CanConnectAsync(cancellationToken)
            ? HealthCheckResult.Healthy(db.Database.ProviderName)
            : HealthCheckResult.Unhealthy("cannot connect to the database");
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

/// <summary>In the embedded default the in-process worker's model must be loaded; an API-only process has none to check.</summary>
public sealed class ModelHealthCheck(IServiceProvider services) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var provider = services.GetService<IModelProvider>();
        if (provider is null) return Task.FromResult(HealthCheckResult.Healthy("no model in this process (workers classify)"));
        return Task.FromResult(provider.LoadedCard is { } card
            ? HealthCheckResult.Healthy(card.Version)
            : HealthCheckResult.Unhealthy("the model is not loaded yet"));
    }
}
