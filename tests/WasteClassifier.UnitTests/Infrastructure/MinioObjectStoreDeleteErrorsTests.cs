using System.Net;
using System.Net.Sockets;
using System.Text;
using Minio;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.UnitTests.Infrastructure;

/// <summary>
/// A DELETE goes through the Minio client, which throws its own exceptions rather than the GET's and PUT's
/// <see cref="ObjectStoreResponseException"/>; s3rver cannot refuse one with a 403, so a socket answers here as S3 would.
/// </summary>
public sealed class MinioObjectStoreDeleteErrorsTests
{
    private const string AccessDenied = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied.</Message>"
        + "<Key>uploads/abc</Key><BucketName>images</BucketName><Resource>/images/uploads/abc</Resource></Error>";

    private const string InvalidArgument = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidArgument</Code><Message>Invalid argument.</Message></Error>";

    private const string SlowDown = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

    private const string WrongSecret = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match.</Message></Error>";

    [Theory]
    [InlineData("403 Forbidden", AccessDenied, true)]
    [InlineData("403 Forbidden", "", false)]
    [InlineData("400 Bad Request", InvalidArgument, false)]
    [InlineData("403 Forbidden", WrongSecret, false)]
    [InlineData("503 Service Unavailable", SlowDown, false)]
    public async Task Delete_StoreAnswersAnError_PermanentOnlyForAnS3RefusalOfTheObject(string status, string body, bool permanent)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var server = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync(stop.Token);
            var request = new byte[8192];
            await socket.ReceiveAsync(request, SocketFlags.None, stop.Token);
            var type = body.Length > 0 ? "Content-Type: application/xml\r\n" : "";
            var answer = $"HTTP/1.1 {status}\r\n{type}Content-Length: {Encoding.UTF8.GetByteCount(body)}\r\nConnection: close\r\n\r\n{body}";
            await socket.SendAsync(Encoding.UTF8.GetBytes(answer), SocketFlags.None, stop.Token);
            socket.Shutdown(SocketShutdown.Both);
        });
        using var minio = new MinioClient().WithEndpoint("127.0.0.1", port).WithCredentials("access", "secret-key").WithRegion("us-east-1").Build();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var store = new MinioObjectStore(minio, "images", http);

        var error = await Assert.ThrowsAnyAsync<Exception>(() => store.DeleteAsync("uploads/abc", CancellationToken.None));

        // A refused delete that counts as transient is asked again every 6 hours for ever (IngestionHousekeeping).
        Assert.True(ObjectStoreErrors.IsPermanent(error) == permanent, $"{status} {body}: {error.GetType().Name} {error.Message}");
        await server;
    }
}
