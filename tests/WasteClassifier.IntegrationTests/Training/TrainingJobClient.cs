using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Training;

/// <summary>Submits training jobs and follows them as an ML engineer would.</summary>
public static class TrainingJobClient
{
    public static async Task<Guid> SubmitAsync(HttpClient http, IEnumerable<byte[]> images, string label, IDictionary<string, string>? options = null)
    {
        using var form = new MultipartFormDataContent();
        var i = 0;
        foreach (var image in images)
        {
            var part = new ByteArrayContent(image);
            part.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
            form.Add(part, "images", $"sample-{i++}.jpg");
        }
        // A label without files is refused (no_file): a job without images is sent without one.
        if (i > 0) form.Add(new StringContent(label), "label");
        foreach (var (name, value) in options ?? new Dictionary<string, string>()) form.Add(new StringContent(value), name);
        var response = await http.PostAsync("/v1/training-jobs", form);
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, body.ToJsonString());
        return Guid.Parse(body["id"]!.GetValue<string>());
    }

    /// <summary>
    /// Submits a job long enough to cancel (<paramref name="epochs"/>), asks to cancel it as soon as a trainer has taken it,
    /// and waits for it to end: the cancel request's answer and the job's final view.
    /// </summary>
    public static async Task<(HttpStatusCode Cancel, JsonNode Job)> CancelOnceRunningAsync(HttpClient http, int epochs)
    {
        var jobId = await SubmitAsync(http, [], "cardboard", new Dictionary<string, string> { ["epochs"] = epochs.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while ((await http.GetFromJsonAsync<JsonNode>($"/v1/training-jobs/{jobId}"))!["status"]!.GetValue<string>() == "queued" && DateTime.UtcNow < deadline)
            await Task.Delay(100);
        var cancel = await http.DeleteAsync($"/v1/training-jobs/{jobId}");
        var (job, _) = await WaitAsync(http, jobId, TimeSpan.FromMinutes(3));
        return (cancel.StatusCode, job);
    }

    /// <summary>Polls until the job ends; returns the final view and every (stage, percent) seen on the way.</summary>
    public static async Task<(JsonNode Job, List<(string? Stage, double Percent)> Seen)> WaitAsync(HttpClient http, Guid id, TimeSpan timeout)
    {
        var seen = new List<(string?, double)>();
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var job = (await http.GetFromJsonAsync<JsonNode>($"/v1/training-jobs/{id}"))!;
            var status = job["status"]!.GetValue<string>();
            if (status == "running") seen.Add((job["progress"]!["stage"]?.GetValue<string>(), job["progress"]!["percent"]!.GetValue<double>()));
            if (status is "succeeded" or "failed" or "cancelled") return (job, seen);
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"training job {id} still {status} after {timeout}");
            await Task.Delay(250);
        }
    }

    public static async Task<string> ActiveVersionAsync(HttpClient http)
    {
        var models = (await http.GetFromJsonAsync<JsonNode>("/v1/models"))!;
        return models["items"]!.AsArray().Single(m => m!["status"]!.GetValue<string>() == "active")!["version"]!.GetValue<string>();
    }
}
