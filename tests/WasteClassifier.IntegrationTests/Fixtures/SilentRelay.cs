using System.Net;
using System.Net.Sockets;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>
/// A TCP relay to a real server until <see cref="Silence"/> or <see cref="Drop"/>. Silenced, it passes nothing either way and
/// closes nothing, on the connections it relays and on the new ones it accepts: a host that drops packets, where a stopped
/// server would refuse at once. Dropped, it first closes the connections it relayed (the client sees them end), then is
/// silent on the new ones: a server that stopped answering after its clients had connected.
/// </summary>
public sealed class SilentRelay : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly List<TcpClient> _sockets = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly string _host;
    private readonly int _port;
    private readonly Task _accepting;
    private volatile bool _silent;

    public SilentRelay(string host, int port)
    {
        (_host, _port) = (host, port);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    /// <summary>A relay to an S3 endpoint given as <c>host:port</c>.</summary>
    public static SilentRelay To(string endpoint)
    {
        var colon = endpoint.LastIndexOf(':');
        return new SilentRelay(endpoint[..colon], int.Parse(endpoint[(colon + 1)..]));
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string Endpoint => $"127.0.0.1:{Port}";

    public void Silence() => _silent = true;

    /// <summary>Closes every connection relayed so far, both ends, and from then on is silent as after <see cref="Silence"/>.</summary>
    public void Drop()
    {
        lock (_sockets)
        {
            _silent = true;
            foreach (var socket in _sockets) socket.Dispose();
            _sockets.Clear();
        }
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                Hold(client);
                if (_silent) continue;
                var server = new TcpClient();
                Hold(server);
                try
                {
                    await server.ConnectAsync(_host, _port, _stop.Token);
                }
                catch (Exception) when (!_stop.IsCancellationRequested)
                {
                    // Refused, or dropped while it connected (a TcpClient disposed by Drop can throw even a
                    // NullReferenceException there): this connection ends, the relay goes on.
                    client.Dispose();
                    continue;
                }
                // Dropped while it connected: Drop closed both, and the client sees its connection end.
                lock (_sockets)
                    if (!_sockets.Contains(server))
                        continue;
                _ = PumpAsync(client, server);
                _ = PumpAsync(server, client);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Disposed.
        }
    }

    /// <summary>Passes bytes on until silenced, then reads and drops them (the sender's writes never block), as a network that loses every packet.</summary>
    private async Task PumpAsync(TcpClient from, TcpClient to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await from.GetStream().ReadAsync(buffer, _stop.Token)) > 0)
                if (!_silent) await to.GetStream().WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            // One side closed: the other learns it, unless the network is silent by then.
            if (!_silent) to.Dispose();
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException or InvalidOperationException)
        {
            if (!_silent) to.Dispose();
        }
    }

    private void Hold(TcpClient socket)
    {
        lock (_sockets) _sockets.Add(socket);
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        lock (_sockets)
        {
            foreach (var socket in _sockets) socket.Dispose();
            _sockets.Clear();
        }
        _stop.Dispose();
    }
}
