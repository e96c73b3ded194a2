using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>The embedded default end to end: real images through the API, the in-memory bus, the worker and SQLite.</summary>
[Collection(EmbeddedCollection.Name)]
public sealed class EmbeddedPipelineTests(EmbeddedApiFixture fixture)
{
    private static readonly string[] ProductClasses =
        ["cardboard", "food organics", "glass", "metal", "miscellaneous trash", "paper", "plastic", "textile trash", "vegetation"];

    [Fact]
    public async Task Submit_RealImagesOfEveryClass_AllCompleteWithProbabilitiesAndTimings()
    {
        var sample = Dataset.Sample(perClass: 2);
        var ids = await fixture.Client.SubmitFilesAsync(sample.Select(s => s.Path), source: "embedded-line");

        var results = await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(2));

        Assert.All(results, r => Assert.Equal("completed", r["status"]!.GetValue<string>()));
        var correct = results.Zip(sample).Count(p => p.First["predicted_class"]!.GetValue<string>() == p.Second.Label);
        Assert.True(correct >= sample.Count - 2, $"{correct} of {sample.Count} correct");
        foreach (var result in results)
        {
            var predictions = result["all_predictions"]!.AsObject();
            Assert.Equal(ProductClasses, predictions.Select(p => p.Key));
            Assert.InRange(predictions.Sum(p => p.Value!.GetValue<double>()), 0.999, 1.001);
            Assert.Equal(predictions.Max(p => p.Value!.GetValue<double>()), result["confidence"]!.GetValue<double>(), 5);
            Assert.Equal("embedded-line", result["source"]!.GetValue<string>());
            Assert.Equal("embedded-worker", result["worker_id"]!.GetValue<string>());
            Assert.False(string.IsNullOrEmpty(result["model_version"]!.GetValue<string>()));
            var timings = result["timings"]!;
            Assert.True(timings["inference_ms"]!.GetValue<double>() > 0);
            Assert.True(timings["total_ms"]!.GetValue<double>() >= timings["queue_ms"]!.GetValue<double>());
            Assert.InRange(timings["batch_size"]!.GetValue<int>(), 1, 16);
            // RFC 3339 in UTC with Z, as the CSV reports write them: JSON gave +00:00.
            Assert.Matches(Rfc3339Utc, result["created_at"]!.GetValue<string>());
            Assert.Matches(Rfc3339Utc, result["completed_at"]!.GetValue<string>());
        }
    }

    private const string Rfc3339Utc = @"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z$";

    [Fact]
    public async Task Get_WithWait_AnswersOnceTheResultIsThereInOneRequest()
    {
        // Timed from a worker that has its model: a fixture started just before on a loaded machine spent most of the
        // bound below loading it (13.6 s of 25 with a load average of 20), which is no part of how long a GET is held.
        await fixture.Client.WaitForModelAsync();
        var ids = await fixture.Client.SubmitFilesAsync(Dataset.Sample(perClass: 1).Take(3).Select(s => s.Path), source: "long-poll-line");
        var started = System.Diagnostics.Stopwatch.StartNew();

        var results = await Task.WhenAll(ids.Select(id => fixture.Client.Http.GetFromJsonAsync<JsonNode>($"/v1/classifications/{id}?wait=30")));

        Assert.All(results, r => Assert.Equal("completed", r!["status"]!.GetValue<string>()));
        // Held until the result was there, not for the whole wait.
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(25), $"answered after {started.Elapsed}");
        var missing = await fixture.Client.Http.GetAsync($"/v1/classifications/{Guid.NewGuid()}?wait=5");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Predict_OneImage_AnswersInTheOriginalShape()
    {
        var (path, label) = Dataset.Sample(perClass: 1).First(s => s.Label == "glass");
        using var form = ClassifierClient.Form([(Path.GetFileName(path), File.ReadAllBytes(path))]);

        var response = await fixture.Client.Http.PostAsync("/predict", form);
        var body = await ClassifierClient.ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(body["success"]!.GetValue<bool>());
        Assert.Equal(label, body["predicted_class"]!.GetValue<string>());
        Assert.Equal(Math.Round(body["confidence"]!.GetValue<double>() * 100, 2), body["confidence_percent"]!.GetValue<double>(), 2);
        Assert.Equal(9, body["all_predictions"]!.AsObject().Count);
        Assert.True(body["latency_ms"]!.GetValue<double>() > 0);
        Assert.NotNull(body["timestamp"]);
    }

    [Fact]
    public async Task SubmitTwice_SameIdempotencyKey_ReturnsTheOriginalIdsAndQueuesNothingNew()
    {
        var files = Dataset.Sample(perClass: 1).Take(2).Select(s => (Path.GetFileName(s.Path), File.ReadAllBytes(s.Path))).ToList();
        var key = Guid.NewGuid().ToString();

        var (first, firstBody) = await fixture.Client.SubmitAsync(files, idempotencyKey: key);
        var (second, secondBody) = await fixture.Client.SubmitAsync(files, idempotencyKey: key);

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, second.StatusCode);
        Assert.Equal(Ids(firstBody), Ids(secondBody));
        Assert.True(secondBody["replayed"]!.GetValue<bool>());
        var page = await fixture.Client.Http.GetFromJsonAsync<JsonNode>("/v1/classifications?limit=500");
        Assert.Equal(2, page!["items"]!.AsArray().Count(i => Ids(firstBody).Contains(i!["id"]!.GetValue<string>())));
    }

    [Fact]
    public async Task Submit_SameImageManyTimesAtOnce_AllAcceptedAndSharingOneStoredImage()
    {
        var bytes = File.ReadAllBytes(Dataset.Sample(perClass: 1)[3].Path);
        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => fixture.Client.SubmitAsync([($"same-{i}.jpg", bytes)])));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Accepted, r.Response.StatusCode));
        var ids = responses.Select(r => Guid.Parse(r.Body["items"]![0]!["id"]!.GetValue<string>())).ToList();
        var results = await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(1));
        Assert.All(results, r => Assert.Equal("completed", r["status"]!.GetValue<string>()));
    }

    [Fact]
    public async Task List_BySourceWithCursor_PagesNewestFirstWithoutRepeats()
    {
        var source = $"cam-{Guid.NewGuid():N}"[..12];
        var ids = await fixture.Client.SubmitFilesAsync(Dataset.Sample(perClass: 1).Take(5).Select(s => s.Path), source);

        var seen = new List<string>();
        string? cursor = null;
        do
        {
            var url = $"/v1/classifications?source={source}&limit=2" + (cursor is null ? "" : $"&cursor={cursor}");
            var page = (await fixture.Client.Http.GetFromJsonAsync<JsonNode>(url))!;
            seen.AddRange(page["items"]!.AsArray().Select(i => i!["id"]!.GetValue<string>()));
            cursor = page["next_cursor"]?.GetValue<string>();
        }
        while (cursor is not null);

        Assert.Equal(ids.Select(i => i.ToString()).Reverse(), seen);
    }

    [Fact]
    public async Task List_ByPredictedClass_ReturnsOnlyThatClassAcrossPages()
    {
        // The web interface's history filtered each page of 50 by class itself, so older matches were never shown.
        var source = $"cls-{Guid.NewGuid():N}"[..12];
        var ids = await fixture.Client.SubmitFilesAsync(Dataset.Sample(perClass: 1).Take(6).Select(s => s.Path), source);
        var results = await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(1));
        var wanted = results[0]["predicted_class"]!.GetValue<string>(); // the oldest: on the last page of an unfiltered list
        var matching = ids.Where((_, i) => results[i]["predicted_class"]!.GetValue<string>() == wanted).Select(i => i.ToString()).Reverse().ToList();
        Assert.True(matching.Count < ids.Count, "every image got the same class: the filter would not be tested");

        var seen = new List<string>();
        string? cursor = null;
        do
        {
            var url = $"/v1/classifications?source={source}&predicted_class={Uri.EscapeDataString(wanted)}&limit=1" + (cursor is null ? "" : $"&cursor={cursor}");
            var page = (await fixture.Client.Http.GetFromJsonAsync<JsonNode>(url))!;
            Assert.All(page["items"]!.AsArray(), i => Assert.Equal(wanted, i!["predicted_class"]!.GetValue<string>()));
            seen.AddRange(page["items"]!.AsArray().Select(i => i!["id"]!.GetValue<string>()));
            cursor = page["next_cursor"]?.GetValue<string>();
        }
        while (cursor is not null);
        Assert.Equal(matching, seen);

        var bad = await fixture.Client.Http.GetAsync("/v1/classifications?predicted_class=%00");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("invalid_predicted_class", (await ClassifierClient.ReadJsonAsync(bad))["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task ServiceEndpoints_ClassesHealthStatsAndIndex_Answer()
    {
        var classes = (await fixture.Client.Http.GetFromJsonAsync<JsonNode>("/classes"))!;
        Assert.Equal(ProductClasses, classes["classes"]!.AsArray().Select(c => c!.GetValue<string>()));
        Assert.Equal(9, classes["num_classes"]!.GetValue<int>());

        var ids = await fixture.Client.SubmitFilesAsync(Dataset.Sample(perClass: 1).Take(3).Select(s => s.Path));
        await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(1));

        var health = (await fixture.Client.Http.GetFromJsonAsync<JsonNode>("/health"))!;
        Assert.Equal("healthy", health["status"]!.GetValue<string>());
        Assert.True(health["model_loaded"]!.GetValue<bool>());
        foreach (var component in new[] { "database", "object_store", "broker" })
            Assert.Equal("healthy", health["components"]![component]!["status"]!.GetValue<string>());

        var stats = (await fixture.Client.Http.GetFromJsonAsync<JsonNode>("/stats"))!;
        Assert.True(stats["counts"]!["completed"]!.GetValue<long>() >= 3);
        Assert.True(stats["latency_ms"]!["total"]!["p95"]!.GetValue<double>() > 0);
        Assert.Contains(stats["per_worker"]!.AsArray(), w => w!["worker_id"]!.GetValue<string>() == "embedded-worker");
        Assert.NotEmpty(stats["per_model_version"]!.AsArray());

        var index = await fixture.Client.Http.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, index.StatusCode);
    }

    private static List<string> Ids(JsonNode body) => body["items"]!.AsArray().Select(i => i!["id"]!.GetValue<string>()).ToList();
}
