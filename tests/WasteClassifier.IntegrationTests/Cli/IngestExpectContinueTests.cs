using System.Net;
using System.Net.Sockets;
using System.Text;
using WasteClassifier.Cli;
using WasteClassifier.Cli.Commands;

namespace WasteClassifier.IntegrationTests.Cli;

/// <summary>
/// <c>wastectl ingest</c> sends a batch's headers with <c>Expect: 100-continue</c>, and its body once the API answers them or,
/// when nothing answers (a proxy in between that ignores the header), after a wait: 30 s, or half <c>--timeout</c> when
/// that is shorter. A longer wait would use up the request's whole timeout before the body went.
/// </summary>
public sealed class IngestExpectContinueTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("wastectl-continue-test").FullName;

    [Fact]
    public async Task Ingest_ServerNeverAnswersTheHeaders_BodyGoesWithinHalfTheTimeoutAndIsAccepted()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var served = AnswerOnceTheBodyIsInAsync(listener);
        var file = Path.Combine(_directory, "a.jpg");
        File.WriteAllBytes(file, [0xFF, 0xD8, 0xFF, 0xD9]);

        // --timeout 6: the body goes after 3 s without an answer; after the default 30 s it would never have gone.
        var exit = await Task.Run(() => CommandDispatcher.Run([new IngestCommand()], ["ingest",
            "--target", $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}", "--source", "line-1",
            "--state", Path.Combine(_directory, "state.jsonl"), "--settle-ms", "0", "--max-attempts", "1", "--timeout", "6", file]));

        var request = await served.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Contains("expect: 100-continue", request.Headers, StringComparison.OrdinalIgnoreCase);
        Assert.True(request.BodyComplete, $"the server got {request.BodyBytes} bytes of the body");
        Assert.Equal(0, exit);
    }

    private sealed record Received(string Headers, long BodyBytes, bool BodyComplete);

    /// <summary>
    /// Takes one request and never answers its headers (no 100 Continue): reads the body, as much as comes, and answers
    /// 202 accepting the first file once all of it is in.
    /// </summary>
    private static async Task<Received> AnswerOnceTheBodyIsInAsync(TcpListener listener)
    {
        using var client = await listener.AcceptTcpClientAsync();
        var stream = client.GetStream();
        var buffer = new byte[64 * 1024];
        var received = new MemoryStream();
        int headerEnd;
        while ((headerEnd = IndexOfBlankLine(received.GetBuffer().AsSpan(0, (int)received.Length))) < 0)
        {
            var read = await stream.ReadAsync(buffer);
            if (read == 0) return new Received(Encoding.ASCII.GetString(received.ToArray()), 0, false);
            received.Write(buffer, 0, read);
        }
        var headers = Encoding.ASCII.GetString(received.GetBuffer(), 0, headerEnd);
        var length = long.Parse(headers.Split("\r\n").Single(line => line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
            .Split(':')[1].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        var body = received.Length - (headerEnd + 4);
        while (body < length)
        {
            var read = await stream.ReadAsync(buffer);
            if (read == 0) return new Received(headers, body, false);
            body += read;
        }
        var answer = Encoding.UTF8.GetBytes($$"""{"items":[{"index":0,"id":"{{Guid.NewGuid()}}"}]}""");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: {answer.Length}\r\nConnection: close\r\n\r\n"));
        await stream.WriteAsync(answer);
        return new Received(headers, body, true);
    }

    private static int IndexOfBlankLine(ReadOnlySpan<byte> bytes) => bytes.IndexOf("\r\n\r\n"u8);

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
