using System.Net.Http.Json;
using System.Text.Json.Nodes;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Ingestion;

/// <summary>
/// The embedded default in its own data folder, with a duplicate window for the source <see cref="DuplicateSource"/>
/// and fast housekeeping; shared by the ingestion tests (each uses its own source names).
/// </summary>
public sealed class IngestionFixture() : EmbeddedFixture("ingest-")
{
    public const string DuplicateSource = "dup-cam";

    protected override IReadOnlyDictionary<string, string?> Settings { get; } = new Dictionary<string, string?>
    {
        ["Uploads:MaxFileBytes"] = (2 * 1024 * 1024).ToString(),
        ["Uploads:MaxFilesPerRequest"] = "40",
        ["Worker:Id"] = "ingest-worker",
        ["Republish:IntervalSeconds"] = "1",
        [$"Ingestion:DuplicateWindows:{DuplicateSource}"] = "300",
        ["Ingestion:HousekeepingIntervalSeconds"] = "0.2",
    };

    /// <summary>A temp folder outside the repository (never the dataset itself).</summary>
    public static string TempFolder(string name)
    {
        var path = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", $"{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Polls <c>GET /v1/sources</c> until every row of <paramref name="source"/> is final.</summary>
    public static async Task<JsonNode> WaitForSourceAsync(HttpClient http, string source, int expectedTotal, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var body = (await http.GetFromJsonAsync<JsonNode>("/v1/sources"))!;
            var row = body["sources"]!.AsArray().FirstOrDefault(s => s!["name"]!.GetValue<string>() == source);
            if (row is not null && row["total"]!.GetValue<long>() >= expectedTotal
                && row["queued"]!.GetValue<long>() + row["processing"]!.GetValue<long>() == 0) return row;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"source {source} not complete after {timeout}: {row?.ToJsonString()}");
            await Task.Delay(200);
        }
    }
}

[CollectionDefinition(Name)]
public sealed class IngestionCollection : ICollectionFixture<IngestionFixture>
{
    public const string Name = "ingestion";
}
