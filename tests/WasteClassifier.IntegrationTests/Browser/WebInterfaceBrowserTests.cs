using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Security;
using WasteClassifier.IntegrationTests.Fixtures;
using Xunit.Abstractions;

namespace WasteClassifier.IntegrationTests.Browser;

/// <summary>
/// The web interface in a real browser: the embedded API on a free loopback port, and tests/tooling/browser/ui-smoke.mjs
/// driving headless chromium (drop images, see results, history, dashboard, models, API reference). The screenshots
/// are kept under TestResults/screenshots at the repository root.
/// </summary>
public sealed class WebInterfaceBrowserTests(ITestOutputHelper output)
{
    public static string ScreenshotDirectory => Path.Combine(BrowserTooling.RepositoryRoot, "TestResults", "screenshots");

    [BrowserFact]
    public async Task WebInterface_DropImagesThenOpenEveryView_ResultsShowAndScreenshotsAreSaved()
    {
        Assert.Null(BrowserTooling.Missing());
        var port = FreePort();
        var dataDirectory = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", Guid.NewGuid().ToString("N"));
        await using var factory = new ApiFactory(new Dictionary<string, string?>
        {
            ["DataDirectory"] = dataDirectory,
            ["Worker:Id"] = "browser-worker",
        });
        factory.UseKestrel(port);
        factory.StartServer();
        await AddWorkerOfAnEarlierRunAsync(factory);

        var sample = Dataset.Sample(perClass: 1);
        var images = sample.Where(s => s.Label is "glass" or "cardboard").Select(s => s.Path).ToList();
        // Another image, sent while the dashboard is shown with /v1/workers refused.
        var dashboardImage = sample.First(s => s.Label is not ("glass" or "cardboard")).Path;
        if (Directory.Exists(ScreenshotDirectory)) Directory.Delete(ScreenshotDirectory, recursive: true);
        var (exitCode, log) = await RunNodeAsync(Path.Combine(BrowserTooling.ToolingDirectory, "browser", "ui-smoke.mjs"),
            ["--url", $"http://127.0.0.1:{port}", .. images.SelectMany(i => new[] { "--image", i }), "--dashboard-image", dashboardImage, "--out", ScreenshotDirectory],
            TimeSpan.FromMinutes(4));
        output.WriteLine(log);

        Assert.True(exitCode == 0, $"ui-smoke.mjs exited with {exitCode}:\n{log}");
        Assert.Contains("[ui] results:", log);
        // The earlier run's worker finished an image two minutes ago: seen, not active.
        Assert.Contains("[ui] active workers: 1 · 2 seen", log);
        // Only this API's in-process worker records heartbeats; the earlier run's left results alone.
        Assert.Contains("[ui] workers up: 1 · 0 missing", log);
        // With /v1/workers answering 404, Workers up says "—" and Completed still counts the image sent meanwhile.
        Assert.Matches(@"\[ui\] without /v1/workers: completed \d+ → \d+, workers up —", log);
        foreach (var name in new[] { "classify", "history", "dashboard", "models", "api-reference", "classify-phone" })
        {
            var file = new FileInfo(Path.Combine(ScreenshotDirectory, $"{name}.png"));
            Assert.True(file.Exists && file.Length > 5_000, $"{name}.png missing or empty");
            var header = new byte[8];
            await using (var stream = file.OpenRead()) await stream.ReadExactlyAsync(header);
            Assert.Equal([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], header);
        }
    }

    [BrowserFact]
    public async Task WebInterface_KeysRequired_SendsTheEnteredKeyAndSaysWhichRoleARefusalNeeds()
    {
        // Keys required for every call and for admin writes from loopback too: the interface had no way to send one.
        Assert.Null(BrowserTooling.Missing());
        const string adminKey = "wc_browser-admin-key-0123456789abcdefghijklmnopqrst";
        const string clientKey = "wc_browser-client-key-0123456789abcdefghijklmnopqrs";
        var port = FreePort();
        var dataDirectory = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", Guid.NewGuid().ToString("N"));
        await using var factory = new ApiFactory(new Dictionary<string, string?>
        {
            ["DataDirectory"] = dataDirectory,
            ["Worker:Id"] = "browser-worker",
            ["Auth:RequireKeyForClassification"] = "true",
            ["Auth:Keys:0:Name"] = "ops",
            ["Auth:Keys:0:Role"] = "admin",
            ["Auth:Keys:0:Hash"] = ApiKeys.Hash(adminKey),
            ["Auth:Keys:1:Name"] = "line-3",
            ["Auth:Keys:1:Role"] = "client",
            ["Auth:Keys:1:Hash"] = ApiKeys.Hash(clientKey),
        });
        factory.UseKestrel(port);
        factory.StartServer();

        // One classified image for the history view to label.
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        http.DefaultRequestHeaders.Add("X-Api-Key", clientKey);
        var client = new ClassifierClient(http);
        await client.WaitForAllAsync(await client.SubmitFilesAsync([Dataset.Sample(perClass: 1).First(s => s.Label == "glass").Path]), TimeSpan.FromMinutes(2));

        var (exitCode, log) = await RunNodeAsync(Path.Combine(BrowserTooling.ToolingDirectory, "browser", "ui-api-key.mjs"),
            ["--url", $"http://127.0.0.1:{port}", "--client-key", clientKey, "--admin-key", adminKey], TimeSpan.FromMinutes(3));
        output.WriteLine(log);

        Assert.True(exitCode == 0, $"ui-api-key.mjs exited with {exitCode}:\n{log}");
        Assert.Contains("[ui] with the admin key: labelled", log);
    }

    /// <summary>
    /// A row finished two minutes ago by the worker of an earlier run of this process (each run's worker id is new): the
    /// dashboard counted it active for five minutes after a restart.
    /// </summary>
    private static async Task AddWorkerOfAnEarlierRunAsync(ApiFactory factory)
    {
        using var scope = factory.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var finished = DateTime.UtcNow.AddMinutes(-2);
        db.Classifications.Add(new Classification
        {
            Id = Guid.CreateVersion7(),
            Image = TestRows.Image("w", finished.AddSeconds(-2)),
            Status = ClassificationStatus.Completed,
            PredictedClass = "glass",
            Confidence = 0.9,
            ModelVersion = "earlier-run",
            WorkerId = "browser-worker-earlier-run",
            CreatedAt = finished.AddSeconds(-2),
            StartedAt = finished.AddSeconds(-1),
            CompletedAt = finished,
        });
        await db.SaveChangesAsync();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<(int ExitCode, string Log)> RunNodeAsync(string script, IReadOnlyList<string> arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = BrowserTooling.ToolingDirectory };
        start.ArgumentList.Add(script);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            return (-1, $"timed out after {timeout}\n{await stdout}\n{await stderr}");
        }
        return (process.ExitCode, $"{await stdout}\n{await stderr}".Trim());
    }
}
