using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using WasteClassifier.Components.Classifying;
using WasteClassifier.Components.Models;

namespace WasteClassifier.Components;

public static class ComponentsExtensions
{
    /// <summary>Services the classification consumer needs: options, the model provider and the batch processor.</summary>
    public static IServiceCollection AddClassificationWorker(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton(configuration.GetSection(WorkerOptions.Section).Get<WorkerOptions>() ?? new WorkerOptions());
        services.AddModelCatalog(configuration);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<IModelProvider, DirectoryModelProvider>();
        services.AddScoped<ClassificationBatchProcessor>();
        services.AddHostedService<ModelWarmup>();
        return services;
    }

    /// <summary>The configured model's card (labels, version) without loading the network; for API-only processes too.</summary>
    public static IServiceCollection AddModelCatalog(this IServiceCollection services, IConfiguration configuration)
    {
        services.TryAddSingleton(configuration.GetSection(ModelOptions.Section).Get<ModelOptions>() ?? new ModelOptions());
        services.TryAddSingleton<ModelCatalog>();
        return services;
    }

    public static void AddClassificationConsumers(this IBusRegistrationConfigurator bus) =>
        bus.AddConsumer<ClassifyImageBatchConsumer, ClassifyImageBatchConsumerDefinition>();
}
