using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.UnitTests.Support;

/// <summary>A worker's model provider over the registry on an in-memory database and object store.</summary>
internal static class ModelRegistryHarness
{
    /// <summary>What the provider resolves for each refresh: the registry, its database and store (promotions are never announced).</summary>
    public static ServiceProvider Services(InMemoryDatabase database, IObjectStore store) => new ServiceCollection()
        .AddSingleton(database.Context)
        .AddSingleton(store)
        .AddSingleton(UnreachablePublishEndpoint.Failing())
        .AddSingleton(new ModelOptions())
        .AddSingleton(TimeProvider.System)
        .AddLogging()
        // The API's JSON options, as its host has them: results executed here (ModelsApi's) write records, named by the policy.
        .ConfigureHttpJsonOptions(json => WasteClassifier.Api.Extensions.ApiExtensions.ConfigureJson(json.SerializerOptions))
        .AddScoped<ModelRegistry>()
        .BuildServiceProvider();

    /// <summary>A one-lane, one-thread provider caching models under <paramref name="dataDirectory"/>.</summary>
    public static RegistryModelProvider Provider(ServiceProvider services, string dataDirectory, TimeProvider clock) =>
        new(services.GetRequiredService<IServiceScopeFactory>(), new ModelOptions { InferenceLanes = 1, InferenceThreads = 1 },
            new ServiceOptions { DataDirectory = dataDirectory }, clock, NullLogger<RegistryModelProvider>.Instance);
}
