namespace WasteClassifier.Api.Ingestion;

public static class IngestionExtensions
{
    /// <summary>Duplicate frames, direct-to-storage uploads and per-source reports.</summary>
    public static IServiceCollection AddClassifierIngestion(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton(configuration.GetSection(IngestionOptions.Section).Get<IngestionOptions>() ?? new IngestionOptions());
        services.AddScoped<DuplicateFrames>();
        services.AddScoped<DirectUploads>();
        services.AddScoped<SourceReports>();
        services.AddHostedService<IngestionHousekeeping>();
        return services;
    }
}
