using MassTransit;
using Microsoft.Extensions.Logging;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.Components.Models;

/// <summary>Every worker instance receives <see cref="ModelPromoted"/> on its own temporary queue and swaps models.</summary>
public sealed class ModelPromotedConsumer(RegistryModelProvider provider, ILogger<ModelPromotedConsumer> logger) : IConsumer<ModelPromoted>
{
    public async Task Consume(ConsumeContext<ModelPromoted> context)
    {
        logger.LogInformation("Model {ModelVersion} promoted; refreshing", context.Message.Version);
        // The registry, not the event, says what is active: promotions in quick succession settle on the last. A version that
        // failed to load lately is tried at once when its PromotedAt there is later than at the failure (promoted again).
        await provider.RefreshAsync(context.CancellationToken);
    }
}

public sealed class ModelPromotedConsumerDefinition : ConsumerDefinition<ModelPromotedConsumer>
{
    public ModelPromotedConsumerDefinition(Classifying.WorkerOptions worker)
    {
        // One auto-deleted queue per process, so the event fans out to every worker.
        Endpoint(endpoint =>
        {
            endpoint.Name = $"model-promoted-{worker.Id}";
            endpoint.Temporary = true;
        });
    }
}
