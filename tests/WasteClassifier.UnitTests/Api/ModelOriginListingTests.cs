using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Api.Apis;
using WasteClassifier.Components.Models;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Api;

/// <summary>Where a model registered at start came from, and the hold-out size its listed scores were measured on.</summary>
public sealed class ModelOriginListingTests : IDisposable
{
    private readonly InMemoryDatabase _database = new();
    private readonly MemoryObjectStore _store = new();
    private readonly DirectoryInfo _offline = Directory.CreateTempSubdirectory("wc-offline-model-");

    [Fact]
    public async Task EnsureBundled_ShippedModel_IsBundledAndListedWithItsHoldOutCount()
    {
        await Registry(new ModelOptions()).EnsureBundledAsync(CancellationToken.None);

        var item = Assert.Single((await ListAsync())["items"]!.AsArray())!;
        Assert.Equal("bundled", item["origin"]!.GetValue<string>());
        Assert.Equal(503, item["hold_out_count"]!.GetValue<int>());
    }

    [Fact]
    public async Task EnsureBundled_ModelTrainedOfflineInModelDirectory_IsRegisteredAsDirectoryWithItsOwnHoldOutCount()
    {
        // A head trained with wastectl train on a small folder: its card's metrics are over that folder's 28-image hold-out.
        foreach (var file in Directory.GetFiles(ModelOptions.BundledDirectory)) File.Copy(file, Path.Combine(_offline.FullName, Path.GetFileName(file)));
        var cardPath = Path.Combine(_offline.FullName, "card.json");
        var card = JsonNode.Parse(await File.ReadAllTextAsync(cardPath))!;
        card["version"] = "offline-1";
        card["metrics"]!["count"] = 28;
        await File.WriteAllTextAsync(cardPath, card.ToJsonString());

        await Registry(new ModelOptions { Directory = _offline.FullName + Path.DirectorySeparatorChar }).EnsureBundledAsync(CancellationToken.None);

        var item = Assert.Single((await ListAsync())["items"]!.AsArray())!;
        Assert.Equal("offline-1", item["version"]!.GetValue<string>());
        Assert.Equal("directory", item["origin"]!.GetValue<string>());
        Assert.Equal(28, item["hold_out_count"]!.GetValue<int>());
    }

    private ModelRegistry Registry(ModelOptions options) =>
        new(_database.Context, _store, UnreachablePublishEndpoint.Failing(), options, TimeProvider.System, NullLogger<ModelRegistry>.Instance);

    private async Task<JsonNode> ListAsync()
    {
        var result = await ModelsApi.ListAsync(_database.Context, CancellationToken.None);
        // The API's JSON naming (ApiExtensions), which the record's property names go through.
        var services = new ServiceCollection().AddLogging()
            .Configure<Microsoft.AspNetCore.Http.Json.JsonOptions>(o => o.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower);
        var context = new DefaultHttpContext { RequestServices = services.BuildServiceProvider() };
        using var body = new MemoryStream();
        context.Response.Body = body;
        await result.ExecuteAsync(context);
        return JsonNode.Parse(body.ToArray())!;
    }

    public void Dispose()
    {
        _database.Dispose();
        _offline.Delete(recursive: true);
    }
}
