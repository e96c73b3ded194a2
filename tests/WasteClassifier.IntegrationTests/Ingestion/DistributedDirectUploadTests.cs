using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Api.Ingestion;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Ingestion;

/// <summary>
/// Direct uploads on the real servers: PostgreSQL, RabbitMQ and the S3 server (s3rver in CI, MinIO under Docker).
/// The client PUTs to the object store's presigned URL itself, never through the API.
/// </summary>
public sealed class DistributedDirectUploadTests : IAsyncLifetime
{
    private ApiFactory _api = null!;
    private ClassifierClient _client = null!;
    private string? _queue;
    private string? _database;

    public async Task InitializeAsync()
    {
        if (!TestServices.Available && !TestServices.IsCi) return;
        var settings = await TestServices.DeploymentSettingsAsync("up");
        _queue = settings["Messaging:ClassifyQueue"];
        _database = settings["Database:ConnectionString"];
        _api = new ApiFactory(new Dictionary<string, string?>(settings)
        {
            // One process keeps the test short; the worker still takes its messages from RabbitMQ.
            ["Api:RunWorker"] = "true",
            ["Worker:Id"] = "uploads-worker",
            ["Model:InferenceThreads"] = "1",
            ["Ingestion:DuplicateWindows:dist-dup"] = "300",
            ["Ingestion:HousekeepingIntervalSeconds"] = "0.2",
        });
        _client = new ClassifierClient(_api.CreateClient());
    }

    public async Task DisposeAsync()
    {
        if (_api is not null) await _api.DisposeAsync();
        if (_queue is not null) await TestServices.DeleteClassifyQueuesAsync(_queue);
        if (_database is not null) await TestServices.DropDatabaseAsync(_database);
    }

    [IntegrationFact]
    public async Task Submit_PartContentTypeLongerThanItsColumn_AcceptedOnPostgres()
    {
        // Multipart, not a direct upload, but on this class's PostgreSQL: SQLite does not enforce varchar lengths.
        var image = Dataset.Sample(1)[^1].Path;
        var type = new System.Net.Http.Headers.MediaTypeHeaderValue("image/jpeg");
        type.Parameters.Add(new System.Net.Http.Headers.NameValueHeaderValue("camera", new string('x', 300)));
        using var form = new MultipartFormDataContent { { new ByteArrayContent(File.ReadAllBytes(image)) { Headers = { ContentType = type } }, "image", "long-type.jpg" } };

        var response = await _client.Http.PostAsync("/v1/classifications", form);

        // It was a 503 with Retry-After: the insert failed (22001) on every retry.
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
    }

    [IntegrationFact]
    public async Task Submit_LongFileNameCutInsideASurrogatePair_AcceptedOnPostgres()
    {
        // A shortened name keeps its extension, so its stem may hold 196 UTF-16 units: they end between the emoji's halves.
        // Half a pair is not UTF-8, which Npgsql refuses to send.
        var name = new string('a', 195) + "\U0001F600.jpg";
        var image = File.ReadAllBytes(Dataset.Sample(1)[^2].Path);
        using var form = new MultipartFormDataContent();
        var part = new ByteArrayContent(image);
        part.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/jpeg");
        // filename* (RFC 5987), as a browser sends a name outside ASCII.
        part.Headers.ContentDisposition = new System.Net.Http.Headers.ContentDispositionHeaderValue("form-data") { Name = "\"image\"", FileNameStar = name };
        form.Add(part);

        var response = await _client.Http.PostAsync("/v1/classifications", form);

        // It was an empty 500, after the submitter had stored the image again on each retry.
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, body.ToJsonString());
        Assert.Equal(new string('a', 195) + ".jpg", body["items"]![0]!["filename"]!.GetValue<string>());

        // A direct upload keeps its announced name the same way.
        var created = await _client.Http.PostAsJsonAsync("/v1/uploads", new { files = new[] { new { filename = name } } });
        var upload = await ClassifierClient.ReadJsonAsync(created);
        Assert.True(created.StatusCode == HttpStatusCode.Created, upload.ToJsonString());
        Assert.Equal(new string('a', 195) + ".jpg", upload["uploads"]![0]!["filename"]!.GetValue<string>());
    }

    [IntegrationFact]
    public async Task ClientStringsWithNul_400OnPostgres()
    {
        // PostgreSQL refuses NUL in text (22021): both reached it and answered 500.
        var list = await _client.Http.GetAsync("/v1/classifications?source=%00");
        Assert.Equal(HttpStatusCode.BadRequest, list.StatusCode);
        Assert.Equal("invalid_source", (await ClassifierClient.ReadJsonAsync(list))["error"]!.GetValue<string>());

        var created = await _client.Http.PostAsJsonAsync("/v1/uploads", new { files = new[] { new { filename = "a.jpg", content_type = "image/jpeg\u0000" } } });
        Assert.Equal(HttpStatusCode.BadRequest, created.StatusCode);
        Assert.Equal("invalid_content_type", (await ClassifierClient.ReadJsonAsync(created))["error"]!.GetValue<string>());

        // A type with parameters is kept as its media type, as a multipart part's is.
        var typed = await _client.Http.PostAsJsonAsync("/v1/uploads", new { files = new[] { new { filename = "b.jpg", content_type = "image/jpeg; camera=\"line 3\"" } } });
        Assert.Equal(HttpStatusCode.Created, typed.StatusCode);
    }

    [IntegrationFact]
    public async Task Upload_PresignedPutAfterCommitOrRefusal_DeletedByHousekeepingOnceTheUrlExpired()
    {
        using var storage = new HttpClient();
        var image = (Name: "after.jpg", Bytes: File.ReadAllBytes(Dataset.Sample(1)[^3].Path));
        var committed = await DirectUploadFlow.RunAsync(_client.Http, storage, [image], "put-after-commit");
        var refusedUpload = (await ClassifierClient.ReadJsonAsync(await _client.Http.PostAsJsonAsync("/v1/uploads", new { count = 1 })))["uploads"]![0]!;
        Assert.True((await storage.PutAsync(refusedUpload["url"]!.GetValue<string>(), new ByteArrayContent("not an image"u8.ToArray()))).IsSuccessStatusCode);
        var refusedId = Guid.Parse(refusedUpload["id"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.BadRequest, (await _client.Http.PostAsJsonAsync("/v1/uploads/commit", new { ids = new[] { refusedId } })).StatusCode);

        // The presigned URLs still work after the commit and the refusal (S3 cannot revoke them): both objects are back.
        foreach (var url in new[] { committed.Uploads[0]["url"]!.GetValue<string>(), refusedUpload["url"]!.GetValue<string>() })
            Assert.True((await storage.PutAsync(url, new ByteArrayContent(image.Bytes))).IsSuccessStatusCode);
        var store = _api.Services.GetRequiredService<IObjectStore>();
        var keys = new[] { DirectUploads.StagingKeyFor(committed.UploadIds[0]), DirectUploads.StagingKeyFor(refusedId) };
        foreach (var key in keys) Assert.NotNull(await store.SizeAsync(key, CancellationToken.None));

        // Housekeeping as it runs once the URLs have expired (900 s, and its minute of grace).
        var housekeeping = new IngestionHousekeeping(_api.Services.GetRequiredService<IServiceScopeFactory>(), _api.Services.GetRequiredService<IngestionOptions>(),
            new Later(TimeSpan.FromMinutes(20)), NullLogger<IngestionHousekeeping>.Instance);
        await housekeeping.ExpireUploadsAsync(CancellationToken.None);

        // Left for ever before: only pending uploads' staged objects were deleted.
        foreach (var key in keys) Assert.Null(await store.SizeAsync(key, CancellationToken.None));
        // Done once: the next round has nothing of theirs to delete.
        Assert.Equal(0, await housekeeping.ExpireUploadsAsync(CancellationToken.None));
    }

    private sealed class Later(TimeSpan by) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + by;
    }

    [IntegrationFact]
    public async Task Upload_PresignedPutToS3ThenCommit_ClassifiedOnPostgres()
    {
        var files = Dataset.Sample(1).Skip(3).Take(4).Select(i => (Name: Path.GetFileName(i.Path), Bytes: File.ReadAllBytes(i.Path))).ToList();
        using var storage = new HttpClient();
        var outcome = await DirectUploadFlow.RunAsync(_client.Http, storage, files, "direct-s3");

        var endpoint = (await TestServices.GetAsync()).S3Endpoint;
        Assert.All(outcome.Uploads, u => Assert.Contains(endpoint, u["url"]!.GetValue<string>()));
        Assert.All(outcome.Uploads, u => Assert.Contains("X-Amz-Signature=", u["url"]!.GetValue<string>()));
        var results = await _client.WaitForAllAsync(outcome.ClassificationIds, TimeSpan.FromSeconds(90));
        Assert.All(results, r => Assert.Equal("completed", r["status"]!.GetValue<string>()));

        // A URL for another access key is refused. (s3rver 3.7.1 does not compute V4 signatures at all, so a tampered
        // signature is only refused by MinIO, the Testcontainers server; s3rver does check the key and the expiry.)
        var url = outcome.Uploads[0]["url"]!.GetValue<string>();
        var foreignUrl = System.Text.RegularExpressions.Regex.Replace(url, "X-Amz-Credential=[A-Za-z0-9]+", "X-Amz-Credential=NOBODY");
        Assert.NotEqual(url, foreignUrl);
        var foreign = await storage.PutAsync(foreignUrl, new ByteArrayContent([1, 2, 3]));
        Assert.False(foreign.IsSuccessStatusCode, $"PUT with an unknown access key answered {(int)foreign.StatusCode}");

        // Duplicates and the per-source report on PostgreSQL.
        var frame = files[0];
        var first = await DirectUploadFlow.RunAsync(_client.Http, storage, [frame], "dist-dup");
        await _client.WaitForAllAsync(first.ClassificationIds, TimeSpan.FromSeconds(60));
        var second = await DirectUploadFlow.RunAsync(_client.Http, storage, [frame], "dist-dup");
        var duplicate = (await _client.WaitForAllAsync(second.ClassificationIds, TimeSpan.FromSeconds(30)))[0];
        Assert.Equal(first.ClassificationIds[0].ToString(), duplicate["duplicate_of"]!.GetValue<string>());

        var sources = (await _client.Http.GetFromJsonAsync<JsonNode>("/v1/sources"))!["sources"]!.AsArray();
        var dup = sources.Single(s => s!["name"]!.GetValue<string>() == "dist-dup")!;
        Assert.Equal(2, dup["total"]!.GetValue<long>());
        Assert.Equal(1, dup["duplicates"]!.GetValue<long>());
        var composition = (await _client.Http.GetFromJsonAsync<JsonNode>("/v1/sources/direct-s3/composition?bucket=day"))!;
        Assert.Equal(4, composition["overall"]!["classes"]!.AsObject().Sum(c => c.Value!["count"]!.GetValue<long>()));
        var csv = await _client.Http.GetStringAsync("/v1/sources/direct-s3/composition?bucket=hour&format=csv");
        Assert.Equal(4, csv.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(l => l.Split(',')).Where(f => f[1] == "overall").Sum(f => int.Parse(f[5])));
        Assert.Equal(HttpStatusCode.NotFound, (await _client.Http.GetAsync("/v1/sources/nobody/composition")).StatusCode);
    }
}
