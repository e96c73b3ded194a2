using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Npgsql;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.LoadTesting;

/// <summary>A load test is an attack unless it is aimed at your own machine: remote targets need an explicit flag.</summary>
public static class TargetGuard
{
    public static void EnsureLoopback(Uri target)
    {
        if (!IsLoopback(target.Host))
            throw new ArgumentException($"{target.Host} is not this machine; pass --allow-remote to load a remote deployment you own");
    }

    /// <summary>
    /// Queue mode and <c>--cleanup</c> write to (and delete from) the deployment's database, object store and broker
    /// directly, so the same rule applies to each of them as configured (<c>Database__*</c>, <c>ObjectStore__*</c>,
    /// <c>Messaging__*</c>). Embedded providers (SQLite, a folder, the in-memory bus) are on this machine by definition.
    /// </summary>
    public static void EnsureLocalDeployment(IConfiguration configuration, bool usesBus)
    {
        var remote = DeploymentHosts(configuration, usesBus).Where(h => !IsLocal(h.Host)).ToList();
        if (remote.Count > 0)
            throw new ArgumentException($"{string.Join(", ", remote.Select(h => $"{h.Service} at {h.Host}"))} {(remote.Count == 1 ? "is" : "are")} not on this machine; " +
                                        "pass --allow-remote to load or clean up a remote deployment you own");
    }

    private static IEnumerable<(string Service, string Host)> DeploymentHosts(IConfiguration configuration, bool usesBus)
    {
        var database = configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions();
        if (string.Equals(database.Provider, DatabaseProviders.Postgres, StringComparison.OrdinalIgnoreCase) && database.ConnectionString is { } connection)
        {
            // A host list ("a,b:5433") names every server Npgsql may use.
            foreach (var host in (new NpgsqlConnectionStringBuilder(connection).Host ?? "localhost").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                yield return ("the database", host);
        }
        var store = configuration.GetSection(ObjectStoreOptions.Section).Get<ObjectStoreOptions>() ?? new ObjectStoreOptions();
        if (string.Equals(store.Provider, ObjectStoreProviders.Minio, StringComparison.OrdinalIgnoreCase))
            yield return ("the object store", Uri.TryCreate($"http://{store.Endpoint}", UriKind.Absolute, out var endpoint) ? endpoint.Host : store.Endpoint);
        var messaging = configuration.GetSection(MessagingOptions.Section).Get<MessagingOptions>() ?? new MessagingOptions();
        if (usesBus && string.Equals(messaging.Transport, MessagingTransports.RabbitMq, StringComparison.OrdinalIgnoreCase))
            yield return ("the broker", messaging.RabbitMq.Host);
    }

    // "host:port" from a host list, or a Unix socket's folder (local by definition).
    private static bool IsLocal(string host) =>
        host.StartsWith('/') || IsLoopback(host.Contains(':') && !host.StartsWith('[') && host.Count(c => c == ':') == 1 ? host[..host.IndexOf(':')] : host);

    public static bool IsLoopback(string host)
    {
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return true;
        if (IPAddress.TryParse(host.Trim('[', ']'), out var address)) return IPAddress.IsLoopback(address);
        try
        {
            var addresses = Dns.GetHostAddresses(host);
            return addresses.Length > 0 && addresses.All(IPAddress.IsLoopback);
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
