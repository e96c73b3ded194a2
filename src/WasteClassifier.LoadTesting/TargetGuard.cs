using System.Net;
using System.Net.Sockets;

namespace WasteClassifier.LoadTesting;

/// <summary>A load test is an attack unless it is aimed at your own machine: remote targets need an explicit flag.</summary>
public static class TargetGuard
{
    public static void EnsureLoopback(Uri target)
    {
        if (!IsLoopback(target.Host))
            throw new ArgumentException($"{target.Host} is not this machine; pass --allow-remote to load a remote deployment you own");
    }

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
