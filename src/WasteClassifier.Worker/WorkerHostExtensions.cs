using WasteClassifier.Components;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Worker;

public static class WorkerHostExtensions
{
    /// <summary>Everything a stand-alone worker process runs: database, object store, model and the classify consumer.</summary>
    public static IServiceCollection AddClassifierWorkerHost(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddClassifierDatabase(configuration);
        services.AddClassifierObjectStore(configuration);
        services.AddClassificationWorker(configuration);
        services.AddClassifierHealthChecks(configuration);
        services.AddClassifierBus(configuration, bus => bus.AddClassificationConsumers());
        services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(configuration.GetValue("Worker:ShutdownTimeoutSeconds", 30)));
        return services;
    }
}
