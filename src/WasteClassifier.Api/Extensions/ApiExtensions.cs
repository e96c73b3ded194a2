using MassTransit;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection.Extensions;
using WasteClassifier.Api.Apis;
using WasteClassifier.Api.Security;
using WasteClassifier.Api.Ingestion;
using WasteClassifier.Api.Observability;
using WasteClassifier.Api.Stats;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components;
using WasteClassifier.Components.Observability;
using WasteClassifier.Components.Training;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Api.Extensions;

public static class ApiExtensions
{
    /// <summary>
    /// Everything the API process runs. With the in-memory transport (the embedded default) the worker runs in
    /// this process too; with RabbitMQ it runs only if <c>Api:RunWorker</c> is true.
    /// </summary>
    public static void AddClassifierApi(this WebApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        var services = builder.Services;
        var uploads = (configuration.GetSection(UploadOptions.Section).Get<UploadOptions>() ?? new UploadOptions()).Validated();
        services.AddSingleton(uploads);
        services.Configure<FormOptions>(form => MultipartUploads.Configure(form, uploads));
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = uploads.MaxRequestBytes);
        // In every environment, so Security/BadRequests can answer a parameter that does not bind with the API's error JSON.
        services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(routes => routes.ThrowOnBadRequest = true);
        services.ConfigureHttpJsonOptions(json => ConfigureJson(json.SerializerOptions));

        services.AddSingleton(TimeProvider.System);
        services.AddClassifierDatabase(configuration);
        services.AddClassifierObjectStore(configuration);
        services.AddModelRegistry(configuration);
        services.AddSingleton<SeenContentHashes>();
        services.AddScoped<ImageIntake>();
        services.AddScoped<ClassificationSubmitter>();
        services.AddScoped<TrainingJobSubmitter>();
        services.TryAddSingleton(TrainingSettings.From(configuration));
        services.AddScoped<ClassifyCommandSender>();
        services.AddSingleton(FinishedListOptions.From(configuration));
        services.AddSingleton(IdempotencyOptions.From(configuration));
        services.AddSingleton(PublicBaseUrlOptions.From(configuration));
        services.AddHostedService<IdempotencySweeper>();
        services.AddScoped<StatsService>();
        services.AddSingleton((configuration.GetSection(StatsOptions.Section).Get<StatsOptions>() ?? new StatsOptions()).Validated());
        services.AddSingleton<StatsSnapshots>();
        services.AddScoped<TimeSeriesService>();
        services.AddHostedService<QueuedRepublisher>();
        services.AddSingleton<ClassificationResultWaiter>();
        services.AddHostedService(provider => provider.GetRequiredService<ClassificationResultWaiter>());
        services.AddClassifierIngestion(configuration);
        // The API's families, and training jobs' durations: its DELETE ends a job whose trainer is gone.
        services.AddExportedMetrics(ClassifierMetrics.ApiRegistry);
        services.AddExportedMetrics(ClassifierMetrics.TrainingRegistry);
        services.AddSingleton(QueueGaugeOptions.From(configuration));
        services.AddSingleton(provider => new QueueGauges(provider.GetRequiredService<IServiceScopeFactory>(), provider.GetRequiredService<QueueGaugeOptions>(),
            provider.GetRequiredService<TimeProvider>(), provider.GetRequiredService<ILogger<QueueGauges>>()));

        // Here too, not only in workers: with none running (scaled to zero) their old rows would never go.
        services.AddWorkerHeartbeatSweeper(configuration);

        var runWorker = RunsWorker(configuration);
        var runTrainer = RunsTrainer(configuration);
        if (runWorker) services.AddClassificationWorker(configuration);
        if (runTrainer) services.AddTrainer(configuration);
        services.AddClassifierBus(configuration, bus =>
        {
            bus.AddConsumer<ClassificationsFinishedConsumer, ClassificationsFinishedConsumerDefinition>();
            if (runWorker) bus.AddClassificationConsumers();
            if (runTrainer) bus.AddTrainerConsumers();
        });

        builder.AddClassifierSecurity();
        services.AddClassifierHealthChecks(configuration);
        services.AddOpenApi(OpenApiDocumentCache.DocumentName, openApi => openApi.AddDocumentTransformer(DocumentedRoute.TransformAsync)
            .AddDocumentTransformer(HealthProbes.TransformAsync).AddDocumentTransformer(ApiResponses.NullOrAnyAsync)
            .AddDocumentTransformer(OpenApiDocumentCache.RelativeServerAsync).AddSchemaTransformer(UtcTimeSchemas.TransformAsync)
            .AddSchemaTransformer(ApiResponses.NumbersAsWrittenAsync).AddSchemaTransformer(WorkersApi.StatusValuesAsync)
            .AddOperationTransformer(ApiResponses.TransformAsync)
            // Last: it copies each GET as the others left it (the probes included, Retry-After on 429 and 503).
            .AddDocumentTransformer(HeadRequests.DocumentAsync));
        services.AddSingleton<OpenApiDocumentCache>();
    }

    /// <summary>The API's JSON: snake_case names and enums, times in UTC with Z; null properties are written.</summary>
    public static void ConfigureJson(JsonSerializerOptions options)
    {
        options.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        options.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        options.Converters.Add(new UtcDateTimeOffsetJsonConverter());
        options.Converters.Add(new UtcDateTimeJsonConverter());
    }

    public static bool RunsWorker(IConfiguration configuration) => InMemory(configuration) || configuration.GetValue("Api:RunWorker", false);

    public static bool RunsTrainer(IConfiguration configuration) => InMemory(configuration) || configuration.GetValue("Api:RunTrainer", false);

    // The in-memory bus lives in this process, so the embedded default must run every consumer here.
    private static bool InMemory(IConfiguration configuration) =>
        (configuration[$"{MessagingOptions.Section}:Transport"] ?? MessagingTransports.InMemory).Equals(MessagingTransports.InMemory, StringComparison.OrdinalIgnoreCase);
}
