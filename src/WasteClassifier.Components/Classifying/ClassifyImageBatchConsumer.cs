using MassTransit;
using Microsoft.Extensions.Logging;
using WasteClassifier.Contracts.Messages;

namespace WasteClassifier.Components.Classifying;

/// <summary>Receives <see cref="ClassifyImage"/> in batches; the batch is acknowledged when the processor's commit returns.</summary>
public sealed class ClassifyImageBatchConsumer(ClassificationBatchProcessor processor, WorkerOptions options, ILogger<ClassifyImageBatchConsumer> logger)
    : IConsumer<Batch<ClassifyImage>>
{
    public async Task Consume(ConsumeContext<Batch<ClassifyImage>> context)
    {
        // Scope properties reach every log line written while this batch runs (Serilog reads logger scopes).
        using var scope = logger.BeginScope(new Dictionary<string, object?>
        {
            ["WorkerId"] = options.Id,
            ["MessageIds"] = context.Message.Select(m => m.MessageId?.ToString()).ToArray(),
            ["ClassificationIds"] = context.Message.Select(m => m.Message.ClassificationId.ToString()).ToArray(),
        });
        await processor.ProcessAsync(context.Message.Select(m => m.Message).ToList(), context.CancellationToken);
    }
}
