using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using WasteClassifier.Components.Classifying;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Observability;
using WasteClassifier.Components.Training;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Hosting;

namespace WasteClassifier.Components;

public static class ComponentsExtensions
{
    /// <summary>The model registry (rows + object-store files); every process that reads or changes models needs it.</summary>
    public static IServiceCollection AddModelRegistry(this IServiceCollection services, IConfiguration configuration)
    {
        services.TryAddSingleton((configuration.GetSection(ModelOptions.Section).Get<ModelOptions>() ?? new ModelOptions()).Validated());
        services.TryAddSingleton(ServiceOptions.From(configuration));
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddScoped<ModelRegistry>();
        return services;
    }

    /// <summary>Services the classification consumer needs: options, the hot-swapping model provider and the batch processor.</summary>
    public static IServiceCollection AddClassificationWorker(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddModelRegistry(configuration);
        // Validated here, so a bad setting stops the process before it serves.
        var worker = (configuration.GetSection(WorkerOptions.Section).Get<WorkerOptions>() ?? new WorkerOptions()).Validated();
        services.TryAddSingleton(sp =>
        {
            if (worker.PipelineDepth == 0) worker.PipelineDepth = sp.GetRequiredService<ModelOptions>().ResolvedLanes + 1;
            return worker;
        });
        services.TryAddSingleton<ModelLanes>();
        services.AddSingleton<RegistryModelProvider>();
        services.AddSingleton<IModelProvider>(sp => sp.GetRequiredService<RegistryModelProvider>());
        services.TryAddSingleton(sp => new BatchTensorPool(maxRetained: Math.Max(1, sp.GetRequiredService<WorkerOptions>().PipelineDepth)));
        services.TryAddSingleton<AccessProbeKeys>();
        services.AddScoped<ClassificationBatchProcessor>();
        services.AddScoped<ClassificationsFinishedNotifier>();
        services.AddSingleton<ClassificationBatchScheduler>();
        services.AddHostedService<ModelWatcher>();
        services.AddHostedService<WorkerHeartbeatService>();
        services.AddWorkerHeartbeatSweeper(configuration);
        services.AddExportedMetrics(ClassifierMetrics.WorkerRegistry);
        return services;
    }

    /// <summary>
    /// The hourly delete of heartbeat rows past <c>Worker:HeartbeatRetentionHours</c>: every API and worker process runs it,
    /// once in a process that is both, so rows go even while no worker runs.
    /// </summary>
    public static IServiceCollection AddWorkerHeartbeatSweeper(this IServiceCollection services, IConfiguration configuration)
    {
        var key = $"{WorkerOptions.Section}:{nameof(WorkerOptions.HeartbeatRetentionHours)}";
        services.TryAddSingleton(new WorkerHeartbeatRetention(WorkerOptions.ValidatedRetentionHours(configuration.GetValue(key, new WorkerOptions().HeartbeatRetentionHours))));
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, WorkerHeartbeatSweeper>());
        return services;
    }

    /// <summary>Services the training consumer needs.</summary>
    public static IServiceCollection AddTrainer(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddModelRegistry(configuration);
        services.TryAddSingleton(TrainingSettings.From(configuration));
        services.AddScoped<TrainingDataLoader>();
        services.AddScoped<TrainingJobRunner>();
        // One instance: the background pass, and the runner's call when a job ends.
        services.AddSingleton<TrainingJobSweeper>();
        services.AddHostedService(sp => sp.GetRequiredService<TrainingJobSweeper>());
        // Runs the claimed job past its message's acknowledgement, and gives it back when the host stops.
        services.AddSingleton<TrainingJobHost>();
        services.AddHostedService(sp => sp.GetRequiredService<TrainingJobHost>());
        services.AddExportedMetrics(ClassifierMetrics.TrainingRegistry);
        return services;
    }

    public static void AddTrainerConsumers(this IBusRegistrationConfigurator bus) =>
        bus.AddConsumer<TrainModelConsumer, TrainModelConsumerDefinition>();

    public static void AddClassificationConsumers(this IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<ClassifyImageBatchConsumer, ClassifyImageBatchConsumerDefinition>();
        bus.AddConsumer<Reliability.ClassifyImageFaultConsumer, Reliability.ClassifyImageFaultConsumerDefinition>();
        bus.AddConsumer<ModelPromotedConsumer, ModelPromotedConsumerDefinition>();
    }

    /// <summary>
    /// What every process does before serving: migrate the database, create the bucket, and register the bundled
    /// model on first start.
    /// </summary>
    public static async Task PrepareServiceAsync(this IServiceProvider services, CancellationToken cancellationToken = default)
    {
        await services.PrepareInfrastructureAsync(cancellationToken: cancellationToken);
        using var scope = services.CreateScope();
        await scope.ServiceProvider.GetRequiredService<ModelRegistry>().EnsureBundledAsync(cancellationToken);
    }
}
