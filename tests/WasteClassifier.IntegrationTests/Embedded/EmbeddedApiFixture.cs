using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>The embedded default (in-memory bus, SQLite, filesystem store, in-process worker) in a fresh data folder.</summary>
public sealed class EmbeddedApiFixture() : EmbeddedFixture("")
{
    public const long MaxFileBytes = 2 * 1024 * 1024;

    protected override IReadOnlyDictionary<string, string?> Settings { get; } = new Dictionary<string, string?>
    {
        ["Uploads:MaxFileBytes"] = MaxFileBytes.ToString(),
        ["Uploads:MaxFilesPerRequest"] = "40",
        ["Worker:Id"] = "embedded-worker",
        ["Republish:IntervalSeconds"] = "1",
    };
}

[CollectionDefinition(Name)]
public sealed class EmbeddedCollection : ICollectionFixture<EmbeddedApiFixture>
{
    public const string Name = "embedded";
}
