using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>The embedded default (in-memory bus, SQLite, filesystem store, in-process worker) in a fresh data folder.</summary>
public sealed class EmbeddedApiFixture : IAsyncLifetime
{
    public const long MaxFileBytes = 2 * 1024 * 1024;

    public string DataDirectory { get; } = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", Guid.NewGuid().ToString("N"));
    public ApiFactory Factory { get; private set; } = null!;
    public ClassifierClient Client { get; private set; } = null!;

    public Task InitializeAsync()
    {
        Factory = new ApiFactory(new Dictionary<string, string?>
        {
            ["DataDirectory"] = DataDirectory,
            ["Uploads:MaxFileBytes"] = MaxFileBytes.ToString(),
            ["Uploads:MaxFilesPerRequest"] = "40",
            ["Worker:Id"] = "embedded-worker",
            ["Republish:IntervalSeconds"] = "1",
        });
        Client = new ClassifierClient(Factory.CreateClient());
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await Factory.DisposeAsync();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // SQLite may still hold the file for a moment; the temp folder is disposable anyway.
        }
    }
}

[CollectionDefinition(Name)]
public sealed class EmbeddedCollection : ICollectionFixture<EmbeddedApiFixture>
{
    public const string Name = "embedded";
}
