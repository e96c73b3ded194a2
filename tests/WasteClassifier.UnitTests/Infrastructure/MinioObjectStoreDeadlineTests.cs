using System.Net;
using System.Net.Sockets;
using System.Text;
using Minio;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.UnitTests.Infrastructure;

/// <summary>An S3 server that answers a GET's headers and then stalls must not hold the read (and a worker's batch) for ever.</summary>
public sealed class MinioObjectStoreDeadlineTests
{
    [Fact]
    public async Task Get_ServerStallsAfterTheHeaders_TimesOutWithinTheClientTimeout()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource();
        var server = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync(stop.Token);
            var request = new byte[8192];
            await socket.ReceiveAsync(request, SocketFlags.None, stop.Token);
            // 1,000 bytes announced, 10 sent, then nothing: a half-open connection or a stuck proxy.
            await socket.SendAsync(Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: image/jpeg\r\n\r\n0123456789"), SocketFlags.None, stop.Token);
            await Task.Delay(Timeout.Infinite, stop.Token);
        });
        using var minio = new MinioClient().WithEndpoint("127.0.0.1", port).WithCredentials("access", "secret-key").WithRegion("us-east-1").Build();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var store = new MinioObjectStore(minio, "images", http);

        var read = store.GetAsync("sha256/ab/abc", CancellationToken.None);

        var error = await Assert.ThrowsAsync<TimeoutException>(() => read.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("GET sha256/ab/abc", error.Message);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => server);
    }

    [Fact]
    public async Task Delete_ServerNeverAnswers_TimesOutWithinTheClientTimeout()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource();
        var server = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync(stop.Token);
            var request = new byte[8192];
            await socket.ReceiveAsync(request, SocketFlags.None, stop.Token);
            await Task.Delay(Timeout.Infinite, stop.Token);
        });
        using var minio = new MinioClient().WithEndpoint("127.0.0.1", port).WithCredentials("access", "secret-key").WithRegion("us-east-1").Build();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var store = new MinioObjectStore(minio, "images", http);

        var delete = store.DeleteAsync("uploads/abc", CancellationToken.None);

        // A TimeoutException naming the delete, as a GET's: it hung for the Minio client's own timeout, then threw a
        // TaskCanceledException that its callers took for their own cancellation.
        var error = await Assert.ThrowsAsync<TimeoutException>(() => delete.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Contains("DELETE uploads/abc", error.Message);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => server);
    }
}
