using WasteClassifier.Components;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Trainer;

public static class TrainerHostExtensions
{
    /// <summary>Everything a stand-alone trainer process runs: database, object store, registry and the train-model consumer.</summary>
    public static IServiceCollection AddClassifierTrainerHost(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddClassifierDatabase(configuration);
        services.AddClassifierObjectStore(configuration);
        services.AddTrainer(configuration);
        services.AddClassifierHealthChecks(configuration);
        services.AddClassifierBus(configuration, bus => bus.AddTrainerConsumers());
        return services;
    }
}
