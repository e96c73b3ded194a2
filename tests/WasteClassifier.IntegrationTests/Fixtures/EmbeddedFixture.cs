namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>
/// The embedded default (in-memory bus, SQLite, filesystem store, in-process worker) in a fresh data folder, with the
/// settings a derived fixture adds; the folder goes when the fixture does.
/// </summary>
public abstract class EmbeddedFixture(string folderPrefix) : IAsyncLifetime
{
    public string DataDirectory { get; } = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", folderPrefix + Guid.NewGuid().ToString("N"));
    public ApiFactory Factory { get; private set; } = null!;
    public ClassifierClient Client { get; private set; } = null!;

    protected abstract IReadOnlyDictionary<string, string?> Settings { get; }

    /// <summary>
    /// Starts the host and waits until its worker has loaded the model: the tests' bounds (a result within a minute, a
    /// resend within 30 s) are about the pipeline, and the first test of a collection otherwise spent them on the load.
    /// </summary>
    public async Task InitializeAsync()
    {
        Factory = new ApiFactory(new Dictionary<string, string?>(Settings) { ["DataDirectory"] = DataDirectory });
        Client = new ClassifierClient(Factory.CreateClient());
        await Client.WaitForModelAsync();
    }

    /// <summary>
    /// Another process of the same deployment, as far as one in this test process can be: the same settings and data folder
    /// (database, objects), with a bus, worker, trainer and sweeper of its own, and <paramref name="overrides"/> (its own
    /// trainer id, say). The caller disposes it.
    /// </summary>
    public ApiFactory AnotherProcess(IReadOnlyDictionary<string, string?>? overrides = null)
    {
        var settings = new Dictionary<string, string?>(Settings) { ["DataDirectory"] = DataDirectory };
        foreach (var (key, value) in overrides ?? new Dictionary<string, string?>()) settings[key] = value;
        return new ApiFactory(settings);
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
