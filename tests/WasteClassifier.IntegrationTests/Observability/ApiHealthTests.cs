using System.Net;
using System.Text.Json;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Observability;

/// <summary>The API's probes answer the same JSON as the worker's: each check's status and a description safe to show.</summary>
public sealed class ApiHealthTests : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", "health-" + Guid.NewGuid().ToString("N"));
    private ApiFactory _factory = null!;

    private string Objects => Path.Combine(_directory, "store-" + "secret-folder-name");

    public Task InitializeAsync()
    {
        _factory = new ApiFactory(new Dictionary<string, string?>
        {
            ["DataDirectory"] = _directory,
            ["ObjectStore:Root"] = Objects,
            ["Worker:Id"] = "health-worker",
        });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _factory.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // SQLite may still hold its file for a moment.
        }
    }

    [Fact]
    public async Task Ready_ObjectStoreFolderRemoved_503NamingTheCheckWithASafeDescription()
    {
        using var http = _factory.CreateClient();
        Assert.True(Directory.Exists(Objects), "the API creates its store folder at start");
        Directory.Delete(Objects, recursive: true);

        var response = await http.GetAsync("/health/ready");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        using var json = JsonDocument.Parse(text);
        Assert.Equal("unhealthy", json.RootElement.GetProperty("status").GetString());
        var store = json.RootElement.GetProperty("checks").GetProperty("object_store");
        Assert.Equal("unhealthy", store.GetProperty("status").GetString());
        Assert.Equal("the object store folder is missing", store.GetProperty("description").GetString());
        Assert.True(store.GetProperty("duration_ms").GetDouble() >= 0);
        var database = json.RootElement.GetProperty("checks").GetProperty("database");
        Assert.Equal("healthy", database.GetProperty("status").GetString());
        // The server's folders are not the client's business: the log has them.
        Assert.DoesNotContain("secret-folder-name", text);
        Assert.DoesNotContain(_directory, text);
        Assert.DoesNotContain("secret-folder-name", await http.GetStringAsync("/health"));
    }

    [Fact]
    public async Task Live_AnswersJsonWithNoChecks()
    {
        using var http = _factory.CreateClient();

        var response = await http.GetAsync("/health/live");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("healthy", json.RootElement.GetProperty("status").GetString());
        Assert.Empty(json.RootElement.GetProperty("checks").EnumerateObject());
    }
}
