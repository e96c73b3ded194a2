using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection;
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
public sealed class DatabaseHealthCheck(ClassifierDbContext db, ReadinessFailureLog<DatabaseHealthCheck>? log = null) : IHealthCheck
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
            log?.Succeeded();
            return HealthCheckResult.Healthy(db.Database.ProviderName);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            var description = Describe(e, opened, commandTimeout, table);
            // Its description is the reason: fixed words per kind of failure, so each is logged once per interval, not per probe.
            log?.Failed(description, e);
            return HealthCheckResult.Unhealthy(description);
        }
        finally
        {
            if (opened) await connection.CloseAsync();
        }
    }

    private static string Describe(Exception e, bool opened, int commandTimeout, string table)
    {
        var reason = ExceptionReasons.Of(e);
        if (!opened) return $"the database is unreachable ({reason})";
        // A query held past the command timeout (a table locked, a server overloaded): in the words of
        // TimeLimitedHealthCheck's own limit, not a schema problem.
        if (ExceptionReasons.IsTimeout(e)) return $"the database did not answer the query within {commandTimeout} s ({reason})";
        return ExceptionReasons.IsMissingTable(e)
            ? $"the database cannot be queried: table {table} cannot be read, are the migrations applied? ({reason})"
            : $"the database cannot be queried: table {table} cannot be read ({reason})";
    }
}

/// <summary>The store can be written (folder) or its bucket read (S3); a failure described by <see cref="ObjectStoreErrors.Describe"/>.</summary>
public sealed class ObjectStoreHealthCheck(IObjectStore store, ReadinessFailureLog<ObjectStoreHealthCheck>? log = null) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await store.CheckAsync(cancellationToken);
            log?.Succeeded();
            return HealthCheckResult.Healthy(store.GetType().Name);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            // Not the caller's cancellation but the S3 client's own 30 s timeout (the database check tells them apart the
            // same way): an answer, in the words ObjectStoreErrors.Describe has for a TimeoutException. Let through, it was
            // described by the health-check framework's own text, unlike every other failure of the check. Logged as the
            // others, once per interval: with a limit above the client's 30 s nothing else says so.
            return Failed("the object store did not answer in time", e);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Failed(e is (IOException and not DirectoryNotFoundException) or UnauthorizedAccessException
                ? $"the object store folder cannot be written ({ExceptionReasons.Of(e)})"
                : ObjectStoreErrors.Describe(e), e);
        }
    }

    /// <summary>Unhealthy with <paramref name="description"/>, which is also the reason it is logged by, once per interval.</summary>
    private HealthCheckResult Failed(string description, Exception e)
    {
        log?.Failed(description, e);
        return HealthCheckResult.Unhealthy(description);
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
