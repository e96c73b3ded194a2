using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Ingestion;

/// <summary>Direct uploads (<c>POST /v1/uploads</c>, PUT, <c>POST /v1/uploads/commit</c>) and their bad input, embedded.</summary>
[Collection(IngestionCollection.Name)]
public sealed class DirectUploadTests(IngestionFixture fixture)
{
    private HttpClient Http => fixture.Client.Http;

    [Fact]
    public async Task Upload_PutThenCommit_ClassifiedAndCommitIsRepeatable()
    {
        var files = Dataset.Sample(1).Take(3).Select(i => (Name: Path.GetFileName(i.Path), Bytes: File.ReadAllBytes(i.Path))).ToList();
        var outcome = await DirectUploadFlow.RunAsync(Http, Http, files, "direct-embedded");

        Assert.All(outcome.Uploads, u => Assert.StartsWith("http://localhost/v1/uploads/", u["url"]!.GetValue<string>()));
        var results = await fixture.Client.WaitForAllAsync(outcome.ClassificationIds, TimeSpan.FromSeconds(60));
        Assert.All(results, r => Assert.Equal("completed", r["status"]!.GetValue<string>()));
        Assert.All(results, r => Assert.Equal("direct-embedded", r["source"]!.GetValue<string>()));

        // A repeated commit (a client retrying after a lost answer) answers with the same classifications.
        var again = await Http.PostAsJsonAsync("/v1/uploads/commit", new { ids = outcome.UploadIds });
        var body = await ClassifierClient.ReadJsonAsync(again);
        Assert.Equal(HttpStatusCode.Accepted, again.StatusCode);
        Assert.Equal(outcome.ClassificationIds, body["items"]!.AsArray().Select(i => Guid.Parse(i!["classification_id"]!.GetValue<string>())).ToList());
    }

    [Fact]
    public async Task Upload_PublicBaseUrlSet_TheUploadUrlIsUnderIt()
    {
        // Behind a TLS proxy that serves the API under /classifier: the request the API sees says http and its own host.
        await using var api = fixture.AnotherProcess(new Dictionary<string, string?> { ["Api:PublicBaseUrl"] = "https://waste.example.org/classifier/" });
        using var http = api.CreateClient();

        var created = await ClassifierClient.ReadJsonAsync(await http.PostAsJsonAsync("/v1/uploads", new { count = 2 }));
        var uploads = created["uploads"]!.AsArray().Select(u => (Id: u!["id"]!.GetValue<string>(), Url: u["url"]!.GetValue<string>())).ToList();

        Assert.All(uploads, u => Assert.Equal($"https://waste.example.org/classifier/v1/uploads/{u.Id}/content", u.Url));
        // The commit too: a relative /v1/uploads/commit would miss the proxy's /classifier.
        var commitUrl = created["commit_url"]!.GetValue<string>();
        Assert.Equal("https://waste.example.org/classifier/v1/uploads/commit", commitUrl);
        // What the proxy forwards (the path under its prefix) reaches the upload, and then the commit.
        var forwarded = new Uri(uploads[0].Url).AbsolutePath["/classifier".Length..];
        Assert.Equal(HttpStatusCode.OK, (await http.PutAsync(forwarded, new ByteArrayContent(File.ReadAllBytes(Dataset.Sample(1)[0].Path)))).StatusCode);
        var commit = await http.PostAsJsonAsync(new Uri(commitUrl).AbsolutePath["/classifier".Length..], new { ids = new[] { uploads[0].Id } });
        Assert.Equal(HttpStatusCode.Accepted, commit.StatusCode);
    }

    [Theory]
    [InlineData("waste.example.org")]
    [InlineData("ftp://waste.example.org")]
    [InlineData("https://waste.example.org/?tenant=a")]
    public async Task Upload_PublicBaseUrlNotAnAbsoluteHttpUrl_TheApiDoesNotStart(string setting)
    {
        await using var api = fixture.AnotherProcess(new Dictionary<string, string?> { ["Api:PublicBaseUrl"] = setting });

        var error = Assert.ThrowsAny<Exception>(() => api.CreateClient());
        Assert.Contains("Api:PublicBaseUrl", error.ToString());
    }

    [Fact]
    public async Task Upload_BadInput_ClearErrors()
    {
        await ExpectErrorAsync(await Http.PostAsync("/v1/uploads", new StringContent("count=3", Encoding.UTF8, "text/plain")), HttpStatusCode.UnsupportedMediaType, "expected_json");
        await ExpectErrorAsync(await Http.PostAsync("/v1/uploads", new StringContent("{\"count\": ", Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest, "invalid_json");
        await ExpectErrorAsync(await Http.PostAsync("/v1/uploads", new StringContent("{\"count\": \"many\"}", Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest, "invalid_json", "count");
        await ExpectErrorAsync(await Http.PostAsJsonAsync("/v1/uploads", new { }), HttpStatusCode.BadRequest, "no_files");
        await ExpectErrorAsync(await Http.PostAsJsonAsync("/v1/uploads", new { count = 0 }), HttpStatusCode.BadRequest, "invalid_count", "between 1 and 40");
        await ExpectErrorAsync(await Http.PostAsJsonAsync("/v1/uploads", new { count = 41 }), HttpStatusCode.BadRequest, "invalid_count");
        await ExpectErrorAsync(await Http.PostAsJsonAsync("/v1/uploads", new { count = 1, files = new[] { new { size = 1 } } }), HttpStatusCode.BadRequest, "ambiguous_request");
        await ExpectErrorAsync(await Http.PostAsJsonAsync("/v1/uploads", new { files = new[] { new { filename = "big.jpg", size = 3 * 1024 * 1024 } } }),
            HttpStatusCode.RequestEntityTooLarge, "file_too_large", "big.jpg");
        await ExpectErrorAsync(await Http.PostAsJsonAsync("/v1/uploads", new { count = 1, source = "bad source!" }), HttpStatusCode.BadRequest, "invalid_source");
        await ExpectErrorAsync(await Http.PostAsJsonAsync("/v1/uploads", new { files = new[] { new { content_type = "image/jpeg\u0000" } } }), HttpStatusCode.BadRequest,
            "invalid_content_type", "files[0]");
        await ExpectErrorAsync(await Http.PostAsJsonAsync("/v1/uploads", new { files = new[] { new { content_type = "jpeg" } } }), HttpStatusCode.BadRequest, "invalid_content_type");

        await ExpectErrorAsync(await Http.PostAsJsonAsync("/v1/uploads/commit", new { ids = Array.Empty<Guid>() }), HttpStatusCode.BadRequest, "no_ids");
        var unknown = Guid.NewGuid();
        await ExpectErrorAsync(await Http.PostAsJsonAsync("/v1/uploads/commit", new { ids = new[] { unknown, unknown } }), HttpStatusCode.BadRequest, "duplicate_ids");
        await ExpectErrorAsync(await Http.PostAsJsonAsync("/v1/uploads/commit", new { ids = new[] { unknown } }), HttpStatusCode.BadRequest, "not_found", unknown.ToString());
        await ExpectErrorAsync(await Http.PostAsJsonAsync("/v1/uploads/commit", new { ids = new[] { unknown }, duplicate_window_seconds = -1 }), HttpStatusCode.BadRequest, "invalid_duplicate_window");

        // Three uploads: nothing PUT, garbage PUT, a real image PUT; one commit answers per id.
        var created = await ClassifierClient.ReadJsonAsync(await Http.PostAsJsonAsync("/v1/uploads", new { files = new[] { new { filename = "a.jpg" }, new { filename = "b.jpg" }, new { filename = "c.jpg" } } }));
        var uploads = created["uploads"]!.AsArray().Select(u => (Id: Guid.Parse(u!["id"]!.GetValue<string>()), Url: u["url"]!.GetValue<string>())).ToList();
        Assert.Equal(HttpStatusCode.OK, (await Http.PutAsync(uploads[1].Url, new ByteArrayContent(Encoding.UTF8.GetBytes("not an image")))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Http.PutAsync(uploads[2].Url, new ByteArrayContent(File.ReadAllBytes(Dataset.Sample(1)[5].Path)))).StatusCode);
        await ExpectErrorAsync(await Http.PutAsync(uploads[0].Url, new ByteArrayContent([])), HttpStatusCode.BadRequest, "empty_file");
        await ExpectErrorAsync(await Http.PutAsync(uploads[0].Url, new ByteArrayContent(new byte[3 * 1024 * 1024])), HttpStatusCode.RequestEntityTooLarge, "file_too_large");
        await ExpectErrorAsync(await Http.PutAsync($"/v1/uploads/{Guid.NewGuid()}/content", new ByteArrayContent([1])), HttpStatusCode.NotFound, "not_found");

        var commit = await Http.PostAsJsonAsync("/v1/uploads/commit", new { ids = uploads.Select(u => u.Id), source = "direct-bad" });
        Assert.Equal(HttpStatusCode.Accepted, commit.StatusCode);
        var items = (await ClassifierClient.ReadJsonAsync(commit))["items"]!.AsArray();
        Assert.Equal(["refused", "refused", "accepted"], items.Select(i => i!["status"]!.GetValue<string>()));
        Assert.Equal("not_uploaded", items[0]!["error"]!.GetValue<string>());
        Assert.Equal("not_an_image", items[1]!["error"]!.GetValue<string>());
        Assert.Contains(uploads[0].Id.ToString(), items[0]!["message"]!.GetValue<string>());

        // A committed upload's URL is closed.
        await ExpectErrorAsync(await Http.PutAsync(uploads[2].Url, new ByteArrayContent([1, 2, 3])), HttpStatusCode.Conflict, "upload_closed");
    }

    internal static async Task ExpectErrorAsync(HttpResponseMessage response, HttpStatusCode status, string error, string? mentions = null)
    {
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.True(status == response.StatusCode, $"expected {(int)status} {error}, got {(int)response.StatusCode}: {body.ToJsonString()}");
        Assert.Equal(error, body["error"]?.GetValue<string>());
        var message = body["message"]?.GetValue<string>();
        Assert.False(string.IsNullOrWhiteSpace(message));
        if (mentions is not null) Assert.Contains(mentions, message);
    }
}

/// <summary>The client side of a direct upload: ask for URLs, PUT each file's bytes, commit.</summary>
internal static class DirectUploadFlow
{
    public sealed record Outcome(IReadOnlyList<JsonNode> Uploads, IReadOnlyList<Guid> UploadIds, IReadOnlyList<Guid> ClassificationIds);

    /// <param name="api">Talks to the API.</param>
    /// <param name="storage">PUTs to the upload URLs (the object store's own, when it presigns).</param>
    public static async Task<Outcome> RunAsync(HttpClient api, HttpClient storage, IReadOnlyList<(string Name, byte[] Bytes)> files, string source)
    {
        var response = await api.PostAsJsonAsync("/v1/uploads", new { files = files.Select(f => new { filename = f.Name, content_type = "image/jpeg", size = f.Bytes.Length }), source });
        var created = await ClassifierClient.ReadJsonAsync(response);
        Assert.True(response.StatusCode == HttpStatusCode.Created, created.ToJsonString());
        var uploads = created["uploads"]!.AsArray().Select(u => u!).ToList();
        Assert.Equal(files.Count, uploads.Count);
        Assert.True(DateTimeOffset.Parse(created["expires_at"]!.GetValue<string>()) > DateTimeOffset.UtcNow);

        for (var i = 0; i < files.Count; i++)
        {
            var put = new HttpRequestMessage(HttpMethod.Put, uploads[i]["url"]!.GetValue<string>()) { Content = new ByteArrayContent(files[i].Bytes) };
            put.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/jpeg");
            var answer = await storage.SendAsync(put);
            Assert.True(answer.IsSuccessStatusCode, $"PUT {uploads[i]["url"]}: {(int)answer.StatusCode} {await answer.Content.ReadAsStringAsync()}");
        }

        var ids = uploads.Select(u => Guid.Parse(u["id"]!.GetValue<string>())).ToList();
        // As a client does: commit where the answer says. Without Api__PublicBaseUrl it is relative, resolved against the
        // client's own origin: one built on the request would say http:// behind a TLS-terminating proxy.
        var commitUrl = created["commit_url"]!.GetValue<string>();
        Assert.Equal("/v1/uploads/commit", commitUrl);
        var commit = await api.PostAsJsonAsync(commitUrl, new { ids });
        var body = await ClassifierClient.ReadJsonAsync(commit);
        Assert.True(commit.StatusCode == HttpStatusCode.Accepted, body.ToJsonString());
        var items = body["items"]!.AsArray();
        Assert.All(items, i => Assert.Equal("accepted", i!["status"]!.GetValue<string>()));
        return new Outcome(uploads, ids, items.Select(i => Guid.Parse(i!["classification_id"]!.GetValue<string>())).ToList());
    }
}
