using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Api.Apis;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Api;

/// <summary>POST /v1/models/{version}/promote against the decision its training job's gate recorded.</summary>
public sealed class ModelPromotionGateTests : IDisposable
{
    private readonly InMemoryDatabase _database = new();
    private readonly ServiceProvider _services;

    public ModelPromotionGateTests()
    {
        _services = ModelRegistryHarness.Services(_database, new MemoryObjectStore());
    }

    [Fact]
    public async Task Promote_CandidateTheGateRefused_IsA409WithTheReasonsAndNothingChanges()
    {
        await _database.AddModelAsync("v1", ModelStatus.Active);
        await AddTrainedCandidateAsync("v2", new PromotionDecision(false, ["macro-F1 0.7340 is 0.1950 below the active model's 0.9290 (allowed drop 0.0100)"]) { Refused = true });

        var (status, body) = await PromoteAsync("v2", force: null);

        Assert.Equal(StatusCodes.Status409Conflict, status);
        Assert.Equal("gate_refused", body["error"]!.GetValue<string>());
        Assert.Contains("force=true", body["message"]!.GetValue<string>());
        Assert.True(body["decision"]!["refused"]!.GetValue<bool>());
        Assert.Contains("macro-F1 0.7340", body["decision"]!["reasons"]![0]!.GetValue<string>());
        Assert.Equal("v1", await ActiveAsync());
    }

    [Fact]
    public async Task Promote_CandidateTheGateRefusedWithForce_PromotesItAndSaysWhatItOverrode()
    {
        await _database.AddModelAsync("v1", ModelStatus.Active);
        await AddTrainedCandidateAsync("v2", new PromotionDecision(false, ["recall of 'glass' falls from 0.950 to 0.600 (allowed drop 0.050)"]) { Refused = true });

        var (status, body) = await PromoteAsync("v2", force: true);

        Assert.Equal(StatusCodes.Status200OK, status);
        Assert.True(body["forced"]!.GetValue<bool>());
        Assert.Equal("v1", body["previous_version"]!.GetValue<string>());
        Assert.True(body["decision"]!["refused"]!.GetValue<bool>());
        Assert.Equal("v2", await ActiveAsync());
    }

    [Fact]
    public async Task Promote_CandidateKeptByPromoteManual_IsPromotedWithoutForce()
    {
        await _database.AddModelAsync("v1", ModelStatus.Active);
        await AddTrainedCandidateAsync("v2", new PromotionDecision(false, ["promote=manual: the candidate passed the gate"]));

        var (status, body) = await PromoteAsync("v2", force: null);

        Assert.Equal(StatusCodes.Status200OK, status);
        Assert.False(body["forced"]!.GetValue<bool>());
        Assert.False(body["decision"]!["refused"]!.GetValue<bool>());
        Assert.Equal("v2", await ActiveAsync());
    }

    [Fact]
    public async Task Promote_ModelWithoutAGateDecision_IsPromotedAsBefore()
    {
        await _database.AddModelAsync("v1", ModelStatus.Active);
        await _database.AddModelAsync("imported", ModelStatus.Candidate);

        var (status, body) = await PromoteAsync("imported", force: null);

        Assert.Equal(StatusCodes.Status200OK, status);
        Assert.Null(body["decision"]);
        Assert.Equal("imported", await ActiveAsync());
    }

    private async Task AddTrainedCandidateAsync(string version, PromotionDecision decision)
    {
        var job = new TrainingJob { Id = Guid.NewGuid(), Status = TrainingJobStatus.Succeeded, OptionsJson = "{}", DecisionJson = decision.ToJson(), CandidateVersion = version };
        _database.Context.TrainingJobs.Add(job);
        await _database.AddModelAsync(version, ModelStatus.Candidate);
        _database.Context.Models.Single(m => m.Version == version).TrainingJobId = job.Id;
        await _database.Context.SaveChangesAsync();
    }

    private async Task<(int Status, JsonNode Body)> PromoteAsync(string version, bool? force)
    {
        using var scope = _services.CreateScope();
        var result = await ModelsApi.PromoteAsync(version, force, scope.ServiceProvider.GetRequiredService<ModelRegistry>(), _database.Context, CancellationToken.None);
        var context = new DefaultHttpContext { RequestServices = _services };
        using var body = new MemoryStream();
        context.Response.Body = body;
        await result.ExecuteAsync(context);
        return (context.Response.StatusCode, JsonNode.Parse(body.ToArray())!);
    }

    private async Task<string> ActiveAsync()
    {
        await using var context = _database.NewContext();
        return context.Models.Single(m => m.Status == ModelStatus.Active).Version;
    }

    public void Dispose()
    {
        _services.Dispose();
        _database.Dispose();
    }
}
