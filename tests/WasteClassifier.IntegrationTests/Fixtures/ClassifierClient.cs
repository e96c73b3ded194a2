using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>What a client of the API does: submit multipart uploads, then poll until every classification is final.</summary>
public sealed class ClassifierClient(HttpClient http)
{
    public HttpClient Http => http;

    public static MultipartFormDataContent Form(IEnumerable<(string FileName, byte[] Content)> files, string? source = null, string field = "image")
    {
        var form = new MultipartFormDataContent();
        foreach (var (name, content) in files)
        {
            var part = new ByteArrayContent(content);
            part.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
            form.Add(part, field, name);
        }
        if (source is not null) form.Add(new StringContent(source), "source");
        return form;
    }

    public async Task<(HttpResponseMessage Response, JsonNode Body)> SubmitAsync(IEnumerable<(string FileName, byte[] Content)> files, string? source = null, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/classifications") { Content = Form(files, source) };
        if (idempotencyKey is not null) request.Headers.Add("Idempotency-Key", idempotencyKey);
        var response = await http.SendAsync(request);
        return (response, await ReadJsonAsync(response));
    }

    public async Task<IReadOnlyList<Guid>> SubmitFilesAsync(IEnumerable<string> paths, string? source = null)
    {
        var (response, body) = await SubmitAsync(paths.Select(p => (Path.GetFileName(p), File.ReadAllBytes(p))), source);
        Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
        return body["items"]!.AsArray().Select(i => Guid.Parse(i!["id"]!.GetValue<string>())).ToList();
    }

    public async Task<JsonNode> GetAsync(Guid id) => (await http.GetFromJsonAsync<JsonNode>($"/v1/classifications/{id}"))!;

    /// <summary>
    /// Long polls (<c>?wait=30</c>, the API's longest hold) until the classification is completed or failed: one request
    /// when the machine keeps up, more when it stalls past a hold. Fails the test after <paramref name="timeout"/>.
    /// </summary>
    public async Task<JsonNode> LongPollUntilFinalAsync(Guid id, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var row = (await http.GetFromJsonAsync<JsonNode>($"/v1/classifications/{id}?wait=30"))!;
            if (row["status"]!.GetValue<string>() is "completed" or "failed") return row;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"classification {id} not final after {timeout}");
        }
    }

    /// <summary>How long a host may take to load its model: a loaded 2-core machine took 74–110 s (load average 20–43).</summary>
    public static readonly TimeSpan ModelLoadPatience = TimeSpan.FromMinutes(3);

    /// <summary>
    /// Polls <c>GET /health</c> until the in-process worker has loaded its model, up to <see cref="ModelLoadPatience"/>
    /// (it returns as soon as it has). A test that bounds how long its classifications take calls it first (the embedded
    /// fixtures do as they start): a fixture started just before spends most of such a bound loading the model on a loaded
    /// machine, which is no part of what the bound is about.
    /// </summary>
    public async Task WaitForModelAsync()
    {
        var deadline = DateTime.UtcNow + ModelLoadPatience;
        while (!(await http.GetFromJsonAsync<JsonNode>("/health"))!["model_loaded"]!.GetValue<bool>())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the in-process worker did not load its model within {ModelLoadPatience}");
            await Task.Delay(100);
        }
    }

    /// <summary>Polls until every id is completed or failed, or fails the test after <paramref name="timeout"/>.</summary>
    public async Task<IReadOnlyList<JsonNode>> WaitForAllAsync(IReadOnlyList<Guid> ids, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var results = new Dictionary<Guid, JsonNode>();
        while (true)
        {
            foreach (var id in ids.Where(id => !results.ContainsKey(id)))
            {
                var row = await GetAsync(id);
                if (row["status"]!.GetValue<string>() is "completed" or "failed") results[id] = row;
            }
            if (results.Count == ids.Count) return ids.Select(id => results[id]).ToList();
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{ids.Count - results.Count} of {ids.Count} classifications not final after {timeout}");
            await Task.Delay(100);
        }
    }

    public static async Task<JsonNode> ReadJsonAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        try
        {
            return JsonNode.Parse(text) ?? new JsonObject();
        }
        catch (JsonException)
        {
            throw new Xunit.Sdk.XunitException($"expected JSON, got {(int)response.StatusCode}: {text}");
        }
    }
}
