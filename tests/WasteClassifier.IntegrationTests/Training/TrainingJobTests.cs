using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Inference;
using WasteClassifier.Core.Training;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;
using WasteClassifier.Testing;

namespace WasteClassifier.IntegrationTests.Training;

/// <summary>Retraining in the embedded default: labelled uploads → queued job → candidate → gate → promotion → hot swap.</summary>
public sealed class TrainingJobTests : IClassFixture<TrainingFixture>
{
    private readonly TrainingFixture _fixture;
    private HttpClient Http => _fixture.Client.Http;

    public TrainingJobTests(TrainingFixture fixture) => _fixture = fixture;

    [Fact]
    public async Task Job_LabelledVegetation_RegistersACandidateThatOncePromotedPredictsVegetationWithoutDroppingClassifications()
    {
        var before = await TrainingJobClient.ActiveVersionAsync(Http);
        // Manual promotion: a head trained on this small base set is judged by people here, not by the gate.
        // One upload passes the header check but will not decode (no pixel data), and falls on the training side: it is
        // left out and named, and neither this job nor the later ones (which include it too) fail on it.
        var broken = Enumerable.Range(64, 32).Select(width => HostileImages.PngHeaderOnly(width, 48)).First(png => !HoldOutSplit.IsHoldOut(SHA256.HashData(png)));
        var jobId = await TrainingJobClient.SubmitAsync(Http, [.. Enumerable.Range(0, 40).Select(i => SyntheticVegetation.Jpeg(i)), broken], "vegetation",
            new Dictionary<string, string> { ["promote"] = "manual" });

        // Classifications keep flowing while the job trains and the model is swapped.
        var flowing = new List<Guid>();
        var finished = TrainingJobClient.WaitAsync(Http, jobId, TimeSpan.FromMinutes(5));
        var real = Dataset.Sample(perClass: 1).Select(s => s.Path).ToList();
        // Paced and capped: on a slow machine a job trains for longer, and an unbounded flow would leave a backlog that the
        // wait below measures instead.
        while (!finished.IsCompleted && flowing.Count < 120)
        {
            flowing.AddRange(await _fixture.Client.SubmitFilesAsync(real.Take(2)));
            await Task.Delay(500);
        }
        var (job, seen) = await finished;

        Assert.Equal("succeeded", job["status"]!.GetValue<string>());
        Assert.False(job["decision"]!["promoted"]!.GetValue<bool>(), job.ToJsonString());
        Assert.Contains(job["decision"]!["reasons"]!.AsArray(), r => r!.GetValue<string>().Contains("'vegetation' is newly recognised"));
        Assert.Contains(seen, s => s.Stage is "features" or "fitting" or "evaluating");
        var unreadable = Assert.Single(job["data_counts"]!["unreadable"]!.AsArray());
        Assert.False(string.IsNullOrEmpty(unreadable!["reason"]!.GetValue<string>()), job["data_counts"]!.ToJsonString());
        Assert.True(job["data_counts"]!["training"]!["vegetation"]!.GetValue<int>() >= 20, job["data_counts"]!.ToJsonString());
        var version = job["candidate_version"]!.GetValue<string>();
        Assert.Equal(before, await TrainingJobClient.ActiveVersionAsync(Http));

        // People judge it here (see above): force, as a head trained on this small base set may fall short of the gate,
        // which refuses a plain promotion then (ModelPromotionGateTests).
        var promote = await Http.PostAsync($"/v1/models/{version}/promote?force=true", null);
        Assert.Equal(HttpStatusCode.OK, promote.StatusCode);
        Assert.Equal(version, await TrainingJobClient.ActiveVersionAsync(Http));
        flowing.AddRange(await _fixture.Client.SubmitFilesAsync(real));
        Assert.True(job["metrics"]!["candidate"]!["per_class"]!["vegetation"]!["recall"]!.GetValue<double>() > 0.5);
        Assert.Equal(0, job["metrics"]!["active"]!["per_class"]!["vegetation"]!["recall"]!.GetValue<double>());

        var model = (await Http.GetFromJsonAsync<JsonNode>($"/v1/models/{version}"))!;
        Assert.Equal("active", model["status"]!.GetValue<string>());
        Assert.Equal(before, model["parent_version"]!.GetValue<string>());
        Assert.NotNull(model["metrics"]!["macro_f1"]);

        var during = await _fixture.Client.WaitForAllAsync(flowing, TimeSpan.FromMinutes(5));
        Assert.All(during, r => Assert.Equal("completed", r["status"]!.GetValue<string>()));

        // New images like the labelled ones are now classified as vegetation, by the new version.
        var fresh = await WaitForVersionAsync(version, Enumerable.Range(1000, 6).Select(i => SyntheticVegetation.Jpeg(i)).ToList());
        Assert.True(fresh.Count(r => r["predicted_class"]!.GetValue<string>() == "vegetation") >= 5, string.Join(", ", fresh.Select(r => r["predicted_class"])));

        // Roll back to the version that was active before; a candidate never active cannot be rolled back to.
        Assert.Equal(HttpStatusCode.OK, (await Http.PostAsync($"/v1/models/{before}/rollback", null)).StatusCode);
        Assert.Equal(before, await TrainingJobClient.ActiveVersionAsync(Http));
        Assert.Equal(HttpStatusCode.NotFound, (await Http.PostAsync("/v1/models/no-such-version/promote", null)).StatusCode);
    }

    [Fact]
    public async Task Job_ShuffledLabels_GateRefusesAndSaysWhy()
    {
        var before = await TrainingJobClient.ActiveVersionAsync(Http);
        var jobId = await TrainingJobClient.SubmitAsync(Http, [], "cardboard",
            new Dictionary<string, string> { ["base_dataset"] = "shuffled", ["include_feedback"] = "false" });

        var (job, _) = await TrainingJobClient.WaitAsync(Http, jobId, TimeSpan.FromMinutes(5));

        Assert.Equal("succeeded", job["status"]!.GetValue<string>());
        Assert.False(job["decision"]!["promoted"]!.GetValue<bool>());
        Assert.Contains(job["decision"]!["reasons"]!.AsArray(), r => r!.GetValue<string>().Contains("macro-F1"));
        Assert.Equal(0, job["data_counts"]!["hold_out_label_conflicts"]!.GetValue<int>());
        Assert.Equal(before, await TrainingJobClient.ActiveVersionAsync(Http));
        var candidate = (await Http.GetFromJsonAsync<JsonNode>($"/v1/models/{job["candidate_version"]!.GetValue<string>()}"))!;
        Assert.Equal("candidate", candidate["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task Job_ActiveModelLackingAClassOfTheBaseDataset_TrainsACandidateThatLearnsIt()
    {
        var before = await TrainingJobClient.ActiveVersionAsync(Http);
        // An imported model without 'textile trash', which the base dataset has (and the API accepts as a label).
        var lacking = await PromoteModelWithoutAsync("textile trash");
        try
        {
            var jobId = await TrainingJobClient.SubmitAsync(Http, [], "cardboard",
                new Dictionary<string, string> { ["epochs"] = "20", ["include_feedback"] = "false", ["promote"] = "manual" });

            var (job, _) = await TrainingJobClient.WaitAsync(Http, jobId, TimeSpan.FromMinutes(3));

            Assert.Equal("succeeded", job["status"]!.GetValue<string>());
            Assert.Equal(lacking, job["baseline_version"]!.GetValue<string>());
            Assert.True(job["data_counts"]!["training"]!["textile trash"]!.GetValue<int>() > 0, job["data_counts"]!.ToJsonString());
            var candidate = (await Http.GetFromJsonAsync<JsonNode>($"/v1/models/{job["candidate_version"]!.GetValue<string>()}"))!;
            Assert.Contains("textile trash", candidate["card"]!["labels"]!.AsArray().Select(l => l!.GetValue<string>()));

            // The card records what the job trained on, by which the gate tells a retrain on the same data: a second job on
            // the same data (nothing labelled in between; the epochs are no part of it) records the same fingerprint.
            var fingerprint = candidate["card"]!["training"]!["data_fingerprint"]!.GetValue<string>();
            Assert.Matches("^sha256:[0-9a-f]{64}$", fingerprint);
            Assert.Equal(await TrainedOnFingerprintAsync(job), fingerprint);
            var againId = await TrainingJobClient.SubmitAsync(Http, [], "cardboard",
                new Dictionary<string, string> { ["epochs"] = "1", ["include_feedback"] = "false", ["promote"] = "manual" });
            var (again, _) = await TrainingJobClient.WaitAsync(Http, againId, TimeSpan.FromMinutes(3));
            Assert.Equal("succeeded", again["status"]!.GetValue<string>());
            var againCard = (await Http.GetFromJsonAsync<JsonNode>($"/v1/models/{again["candidate_version"]!.GetValue<string>()}"))!["card"]!;
            Assert.Equal(fingerprint, againCard["training"]!["data_fingerprint"]!.GetValue<string>());
        }
        finally
        {
            await Http.PostAsync($"/v1/models/{before}/rollback", null);
        }
    }

    /// <summary>
    /// The fingerprint of what a job on the base set without feedback trains on, worked out here: the base set's and the
    /// labelled uploads' training-side images, one per content (the latest sample's label wins), less those that would not decode.
    /// </summary>
    private async Task<string> TrainedOnFingerprintAsync(JsonNode job)
    {
        var leftOut = job["data_counts"]!["unreadable"]!.AsArray().Select(u => u!["path"]!.GetValue<string>()).ToHashSet();
        var trained = new Dictionary<string, (string Path, byte[] Sha256, string Label)>();
        using var scope = _fixture.Factory.Services.CreateScope();
        var baseSet = scope.ServiceProvider.GetRequiredService<IConfiguration>()["Training:Datasets:small"]!;
        foreach (var entry in DatasetManifest.Read(baseSet))
        {
            var sha256 = SHA256.HashData(File.ReadAllBytes(Path.Combine(baseSet, entry.Path)));
            trained[Convert.ToHexString(sha256)] = (entry.Path, sha256, entry.Label);
        }
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        foreach (var sample in await db.LabelledSamples.AsNoTracking().Include(s => s.Image).Where(s => s.Origin == SampleOrigin.Upload)
                     .OrderBy(s => s.CreatedAt).ThenBy(s => s.Id).ToListAsync())
        {
            var sha256 = Convert.FromHexString(sample.Image!.ContentHash);
            trained[Convert.ToHexString(sha256)] = (sample.Image.ObjectKey, sha256, sample.Label);
        }
        return TrainingDataFingerprint.Of(trained.Values.Where(t => !HoldOutSplit.IsHoldOut(t.Sha256) && !leftOut.Contains(t.Path)).Select(t => (t.Sha256, t.Label)));
    }

    /// <summary>Registers and promotes a model of the bundled one's backbone without <paramref name="label"/> (a random head: only its labels matter).</summary>
    private async Task<string> PromoteModelWithoutAsync(string label)
    {
        using var scope = _fixture.Factory.Services.CreateScope();
        var registry = scope.ServiceProvider.GetRequiredService<ModelRegistry>();
        var bundled = ModelCard.Load(scope.ServiceProvider.GetRequiredService<ModelOptions>().Directory);
        var labels = bundled.Labels.Where(l => l != label).ToList();
        var width = BackboneDefinition.All.Single(b => b.Id == bundled.Backbone).FeatureWidth;
        var random = new Random(5);
        float[] Values(int n) => Enumerable.Range(0, n).Select(_ => random.NextSingle() - 0.5f).ToArray();
        var head = new HeadModel(width, true, new float[width], Enumerable.Repeat(1f, width).ToArray(),
            [new DenseLayer(width, labels.Count, Values(width * labels.Count), Values(labels.Count), false)]);
        var card = bundled with { Version = $"without-{label.Replace(' ', '-')}-{Guid.NewGuid():N}", Labels = labels, Metrics = null, Training = null };
        await registry.RegisterAsync(card, new Dictionary<string, byte[]> { [card.Head!] = HeadOnnxExporter.ToOnnx(head).ToByteArray() }, "imported", null, null,
            ModelStatus.Candidate, CancellationToken.None);
        await registry.PromoteAsync(card.Version, CancellationToken.None);
        return card.Version;
    }

    [Fact]
    public async Task Cancel_RunningJob_EndsCancelledAndLeavesTheActiveModel()
    {
        var before = await TrainingJobClient.ActiveVersionAsync(Http);

        var (cancel, job) = await TrainingJobClient.CancelOnceRunningAsync(Http, epochs: 500);

        Assert.Equal(HttpStatusCode.Accepted, cancel);
        Assert.Equal("cancelled", job["status"]!.GetValue<string>());
        Assert.Null(job["candidate_version"]);
        Assert.Equal(before, await TrainingJobClient.ActiveVersionAsync(Http));
        Assert.Equal(HttpStatusCode.Conflict, (await Http.DeleteAsync($"/v1/training-jobs/{job["id"]!.GetValue<string>()}")).StatusCode);
    }

    [Fact]
    public async Task Retrain_OriginalRoute_QueuesAJobAndAnswersInTheOldShapeWithItsId()
    {
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(SyntheticVegetation.Jpeg(500)), "images", "leaf.jpg" },
            { new StringContent("vegetation"), "label" },
            { new StringContent("manual"), "promote" },
        };
        var response = await Http.PostAsync("/retrain", form);
        var body = await ClassifierClient.ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.True(body["success"]!.GetValue<bool>());
        Assert.Equal(1, body["images_received"]!.GetValue<int>());
        var job = (await Http.GetFromJsonAsync<JsonNode>(body["status_url"]!.GetValue<string>()))!;
        Assert.Equal(body["job_id"]!.GetValue<string>(), job["id"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.Accepted, (await Http.DeleteAsync(body["status_url"]!.GetValue<string>())).StatusCode);
    }

    [Fact]
    public async Task Label_UnknownLabel_400NamingTheValidOnes()
    {
        var ids = await _fixture.Client.SubmitFilesAsync([Dataset.Sample(1)[0].Path]);
        var response = await Http.PutAsJsonAsync($"/v1/classifications/{ids[0]}/label", new { label = "banana" });
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("vegetation", body["message"]!.GetValue<string>());

        var ok = await Http.PutAsJsonAsync($"/v1/classifications/{ids[0]}/label", new { label = "cardboard" });
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Http.PutAsJsonAsync($"/v1/classifications/{Guid.NewGuid()}/label", new { label = "cardboard" })).StatusCode);
    }

    [Fact]
    public async Task Label_ImageThatFailedToDecode_409AndNoSample()
    {
        // Passes the upload's header check, has no pixel data: the worker fails it as corrupt.
        var (_, body) = await _fixture.Client.SubmitAsync([("no-pixels.png", HostileImages.PngHeaderOnly(80, 60))]);
        var id = Guid.Parse(body["items"]![0]!["id"]!.GetValue<string>());
        var result = Assert.Single(await _fixture.Client.WaitForAllAsync([id], TimeSpan.FromMinutes(2)));
        Assert.Equal("corrupt_image", result["error_code"]!.GetValue<string>());

        var response = await Http.PutAsJsonAsync($"/v1/classifications/{id}/label", new { label = "cardboard" });

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Equal("image_unusable", (await ClassifierClient.ReadJsonAsync(response))["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Submit_BadTrainingRequests_400()
    {
        using var mismatch = new MultipartFormDataContent
        {
            { new ByteArrayContent(SyntheticVegetation.Jpeg(1)), "images", "a.jpg" },
            { new StringContent("vegetation"), "labels" },
            { new StringContent("glass"), "labels" },
        };
        var response = await Http.PostAsync("/v1/training-jobs", mismatch);
        Assert.Equal("label_count_mismatch", (await ClassifierClient.ReadJsonAsync(response))["error"]!.GetValue<string>());

        using var unknown = new MultipartFormDataContent { { new ByteArrayContent(SyntheticVegetation.Jpeg(1)), "images", "a.jpg" }, { new StringContent("banana"), "label" } };
        Assert.Equal("invalid_label", (await ClassifierClient.ReadJsonAsync(await Http.PostAsync("/v1/training-jobs", unknown)))["error"]!.GetValue<string>());

        using var dataset = new MultipartFormDataContent { { new StringContent("nope"), "base_dataset" } };
        Assert.Equal("invalid_option", (await ClassifierClient.ReadJsonAsync(await Http.PostAsync("/v1/training-jobs", dataset)))["error"]!.GetValue<string>());
    }

    private async Task<IReadOnlyList<JsonNode>> WaitForVersionAsync(string version, IReadOnlyList<byte[]> images)
    {
        // The embedded worker swaps on ModelPromoted, then loads the new head: up to a minute for both, by the clock (six
        // tries a second apart can all end before a loaded machine has swapped); the results come back once they are its.
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (true)
        {
            var (response, body) = await _fixture.Client.SubmitAsync(images.Select((b, i) => ($"veg-{i}.jpg", b)));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            var ids = body["items"]!.AsArray().Select(i => Guid.Parse(i!["id"]!.GetValue<string>())).ToList();
            var results = await _fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(1));
            if (results.All(r => r["model_version"]!.GetValue<string>() == version) || DateTime.UtcNow > deadline) return results;
            await Task.Delay(1000);
        }
    }
}
