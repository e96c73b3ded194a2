using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Infrastructure.Hosting;

public static class InfrastructureStartup
{
    /// <summary>How long a process retries, by default, a database or object store that is not ready yet.</summary>
    public static readonly TimeSpan DefaultPatience = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Migrates the database and creates the bucket before a process starts serving. Retries for a while,
    /// because in Compose or Kubernetes the servers may come up after this process.
    /// </summary>
    public static async Task PrepareInfrastructureAsync(this IServiceProvider services, TimeSpan? patience = null, CancellationToken cancellationToken = default)
    {
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(InfrastructureStartup));
        var deadline = DateTime.UtcNow + (patience ?? DefaultPatience);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await services.MigrateDatabaseAsync(cancellationToken: cancellationToken);
                await services.GetRequiredService<IObjectStore>().EnsureReadyAsync(cancellationToken);
                return;
            }
            // Not a migration lock wait that ran out: that wait had its own deadline, and is not a server still coming up.
            catch (Exception e) when (DateTime.UtcNow < deadline && e is not (OperationCanceledException or MigrationLockTimeoutException))
            {
                logger.LogWarning("Database or object store not ready (attempt {Attempt}): {Reason}; retrying", attempt, e.Message);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(5, attempt)), cancellationToken);
            }
        }
    }
}
