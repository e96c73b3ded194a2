using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WasteClassifier.Components.Models;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Components.Observability;

/// <summary>
/// Reads the classifications table (no rows: <c>LIMIT 0</c>), so a database that accepts connections but lacks the
/// schema (migrations not applied) is not ready: every request would fail there. The description names the failure by its
/// kind and codes only (<see cref="ExceptionReasons"/>): a driver's message can name the host, the user or worse; the log
/// has the whole exception.
/// </summary>
public sealed class DatabaseHealthCheck(ClassifierDbContext db, ILogger<DatabaseHealthCheck>? logger = null) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var entity = db.Model.FindEntityType(typeof(Classification))!;
        var table = db.GetService<ISqlGenerationHelper>().DelimitIdentifier(entity.GetTableName()!, entity.GetSchema());
        var connection = db.Database.GetDbConnection();
        var opened = false;
        var commandTimeout = 0;
        try
        {
            // One statement on the context's connection, outside EF's retry strategy (which its OpenConnectionAsync goes
            // through: an unreachable PostgreSQL held the probe for half a minute): a probe answers now; the next one tries again.
            await connection.OpenAsync(cancellationToken);
            opened = true;
            await using var command = connection.CreateCommand();
            commandTimeout = command.CommandTimeout;
            command.CommandText = $"SELECT 1 FROM {table} LIMIT 0";
            await command.ExecuteNonQueryAsync(cancellationToken);
            return HealthCheckResult.Healthy(db.Database.ProviderName);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            logger?.LogWarning(e, "Readiness: the database check failed");
            var reason = ExceptionReasons.Of(e);
            if (!opened) return HealthCheckResult.Unhealthy($"the database is unreachable ({reason})");
            // A query held past the command timeout (a table locked, a server overloaded): in the words of
            // TimeLimitedHealthCheck's own limit, not a schema problem.
            if (ExceptionReasons.IsTimeout(e)) return HealthCheckResult.Unhealthy($"the database did not answer the query within {commandTimeout} s ({reason})");
            return HealthCheckResult.Unhealthy(ExceptionReasons.IsMissingTable(e)
                ? $"the database cannot be queried: table {table} cannot be read, are the migrations applied? ({reason})"
                : $"the database cannot be queried: table {table} cannot be read ({reason})");
        }
        finally
        {
            if (opened) await connection.CloseAsync();
        }
    }
}

/// <summary>The store can be written (folder) or its bucket read (S3); a failure described by <see cref="ObjectStoreErrors.Describe"/>.</summary>
public sealed class ObjectStoreHealthCheck(IObjectStore store, ILogger<ObjectStoreHealthCheck>? logger = null) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await store.CheckAsync(cancellationToken);
            return HealthCheckResult.Healthy(store.GetType().Name);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            // Not the caller's cancellation but the S3 client's own 30 s timeout (the database check tells them apart the
            // same way): an answer, in the words ObjectStoreErrors.Describe has for a TimeoutException. Let through, it was
            // described by the health-check framework's own text, unlike every other failure of the check. Debug, not a
            // Warning with a stack every 30 s: with a limit under the client's 30 s (the default 3 s; the probes' 5 s ask
            // for one) TimeLimitedHealthCheck has already warned of this silence; with a limit above it, the answer says it.
            logger?.LogDebug(e, "Readiness: the object store check failed");
            return HealthCheckResult.Unhealthy("the object store did not answer in time");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger?.LogWarning(e, "Readiness: the object store check failed");
            return HealthCheckResult.Unhealthy(e is (IOException and not DirectoryNotFoundException) or UnauthorizedAccessException
                ? $"the object store folder cannot be written ({ExceptionReasons.Of(e)})"
                : ObjectStoreErrors.Describe(e));
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
