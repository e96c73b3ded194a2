using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using WasteClassifier.Cli;
using WasteClassifier.Cli.Commands;
using WasteClassifier.Cli.Ingest;
using WasteClassifier.LoadTesting.Http;
using WasteClassifier.LoadTesting.Images;
using WasteClassifier.LoadTesting.Targets;

namespace WasteClassifier.IntegrationTests.Cli;

/// <summary>
/// wastectl's API key goes only where --target points: no redirect is followed (HttpClient would carry X-Api-Key to
/// another host), and the key can come from a file, out of the process list.
/// </summary>
public sealed class WastectlHttpTests : IAsyncLifetime
{
    private const string Key = "wc_redirect-test-key-0123456789abcdef";
    // The clients' timeouts: a fresh Kestrel server on a loaded CI machine can take seconds to answer its first request,
    // and a request timed out reads as a target not answering, not as the redirect these tests are about. Each answer comes
    // at once when it can, so a passing run waits no longer.
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly string _directory = Directory.CreateTempSubdirectory("wastectl-http-test").FullName;
    private Server _other = null!;
    private Server _target = null!;

    public async Task InitializeAsync()
    {
        // Another host (another port is another origin): answers as the API would, and records what it was sent.
        _other = await Server.StartAsync(_ => Results.Json(new { items = new[] { new { index = 0, id = Guid.NewGuid().ToString() } } }, statusCode: 202));
        // The target moved everything there, keeping the method and body (307).
        _target = await Server.StartAsync(context => Results.Redirect(new Uri(_other.Url, context.Request.Path + context.Request.QueryString).ToString(), preserveMethod: true));
    }

    public async Task DisposeAsync()
    {
        await _other.DisposeAsync();
        await _target.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public void Ingest_TargetRedirectsToAnotherHost_FailsAndTheKeyFromItsFileNeverGoesThere()
    {
        var file = Path.Combine(_directory, "a.jpg");
        File.WriteAllBytes(file, [0xFF, 0xD8, 0xFF, 0xD9]);
        var keyFile = Path.Combine(_directory, "key");
        File.WriteAllText(keyFile, $"  {Key} \nnot the key\n");

        var exit = CommandDispatcher.Run([new IngestCommand()], ["ingest", "--target", _target.Url.ToString(), "--source", "line-1",
            "--state", Path.Combine(_directory, "state.jsonl"), "--settle-ms", "0", "--max-attempts", "1", "--api-key-file", keyFile, file]);

        Assert.Equal(1, exit);
        // The target was sent the key, the file's first line trimmed; the host it redirected to got nothing.
        Assert.Contains(_target.Requests, r => r.Key == Key);
        Assert.Empty(_other.Requests);
    }

    [Fact]
    public async Task IngestClient_Redirect_FatalNamingTheLocation()
    {
        var file = Path.Combine(_directory, "b.jpg");
        File.WriteAllBytes(file, [0xFF, 0xD8, 0xFF, 0xD9]);
        var files = new List<IngestFile> { new(file, 4, File.GetLastWriteTimeUtc(file).Ticks) };
        using var http = WastectlHttp.CreateClient(_target.Url, Patience, Key);
        var client = new IngestClient(http, new IngestOptions { Source = "line-1", StateFile = Path.Combine(_directory, "state.jsonl"), MaxAttempts = 3 });

        var result = await client.SendAsync(IngestClient.KeyFor("line-1", files), files, CancellationToken.None);

        // Not retried: the next try would be redirected as well.
        Assert.Equal(IngestClient.Kind.Fatal, result.Kind);
        Assert.Contains($"307 redirecting to {new Uri(_other.Url, "/v1/classifications")}", result.Reason);
        Assert.Contains("give the final URL as --target", result.Reason);
        Assert.Single(_target.Requests);
        Assert.Empty(_other.Requests);
    }

    [Fact]
    public async Task LoadTest_TargetRedirectsToAnotherHost_RefusedBeforeTheLoadAndNoRequestCarriesTheKeyThere()
    {
        var refusal = await HttpLoadTarget.CheckAnsweringAsync(_target.Url, Patience);
        Assert.NotNull(refusal);
        Assert.Contains($"redirecting to {new Uri(_other.Url, "/health/ready")}", refusal);

        // With --no-ready-check: each request fails as a redirect, and none reaches the other host.
        await using var target = new HttpLoadTarget(WastectlHttp.CreateClient(_target.Url, Patience), "line-1", apiKey: Key);
        var submitted = await target.SubmitAsync(new TestImage("a.jpg", [0xFF, 0xD8, 0xFF, 0xD9], "image/jpeg"), CancellationToken.None);
        var polled = await target.PollAsync(Guid.NewGuid().ToString(), CancellationToken.None);

        Assert.Equal((ResponseKind.Failed, "http_307_redirect"), (submitted.Kind, submitted.Reason));
        Assert.Equal((ResponseKind.Failed, "poll_http_307_redirect"), (polled.Kind, polled.Reason));
        Assert.Contains(_target.Requests, r => r.Key == Key);
        Assert.Empty(_other.Requests);
    }

    [Theory]
    [InlineData("ingest")]
    [InlineData("loadtest")]
    public void ApiKeyFile_EveryVerbWithApiKey_TakesItsFirstLineTrimmed(string verb)
    {
        ICommand command = verb == "ingest" ? new IngestCommand() : new LoadTestCommand();
        var keyFile = Path.Combine(_directory, "key");
        File.WriteAllText(keyFile, $"\t{Key}  \r\nsecond\n");

        Assert.Contains(ApiKeyOption.FileOption, command.Usage);
        Assert.Equal(Key, ApiKeyOption.Resolve(Arguments(command, "--api-key-file", keyFile)));
        Assert.Equal("inline", ApiKeyOption.Resolve(Arguments(command, "--api-key", "inline")));
    }

    [Theory]
    [InlineData("missing", "--api-key-file not found")]
    [InlineData("empty", "is empty: its first line must be the key")]
    [InlineData("blank", "is empty: its first line must be the key")]
    [InlineData("both", "give --api-key or --api-key-file, not both")]
    public void ApiKeyFile_MissingEmptyOrBesideApiKey_UsageErrorExit2(string problem, string message)
    {
        var keyFile = Path.Combine(_directory, "key");
        if (problem == "empty") File.WriteAllText(keyFile, "");
        if (problem is "blank" or "both") File.WriteAllText(keyFile, problem == "blank" ? "   \nsecond line\n" : Key);
        string[] key = problem == "both" ? ["--api-key", Key, "--api-key-file", keyFile] : ["--api-key-file", keyFile];
        var file = Path.Combine(_directory, "c.jpg");
        File.WriteAllBytes(file, [0xFF, 0xD8, 0xFF, 0xD9]);

        foreach (ICommand command in new ICommand[] { new IngestCommand(), new LoadTestCommand() })
            Assert.Contains(message, Assert.Throws<UsageException>(() => ApiKeyOption.Resolve(Arguments(command, key))).Message);
        // Before any request: the target would have recorded it.
        Assert.Equal(CommandDispatcher.UsageError, CommandDispatcher.Run([new IngestCommand()],
            ["ingest", "--target", _target.Url.ToString(), "--source", "line-1", "--state", Path.Combine(_directory, "state.jsonl"), "--settle-ms", "0", .. key, file]));
        Assert.Empty(_target.Requests);
    }

    private static CommandArguments Arguments(ICommand command, params string[] args) =>
        new(args, command.ValueOptions, command.FlagOptions, command.TakesPaths);

    /// <summary>A Kestrel server on a port of its own that records each request's method, path and X-Api-Key.</summary>
    private sealed class Server : IAsyncDisposable
    {
        private WebApplication _app = null!;

        public ConcurrentQueue<(string Method, string Path, string? Key)> Requests { get; } = new();

        public Uri Url { get; private set; } = null!;

        public static async Task<Server> StartAsync(Func<HttpContext, IResult> answer)
        {
            var server = new Server();
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
            server._app = builder.Build();
            server._app.Run(async context =>
            {
                server.Requests.Enqueue((context.Request.Method, context.Request.Path, context.Request.Headers[WastectlHttp.ApiKeyHeader].FirstOrDefault()));
                // Read the body, so a client sending it is never cut off before it reads the answer.
                await context.Request.Body.CopyToAsync(Stream.Null);
                await answer(context).ExecuteAsync(context);
            });
            await server._app.StartAsync();
            server.Url = new Uri(server._app.Urls.First().TrimEnd('/') + "/");
            return server;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }
}
