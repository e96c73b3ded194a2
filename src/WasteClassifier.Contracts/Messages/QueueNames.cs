namespace WasteClassifier.Contracts.Messages;

/// <summary>
/// Queues that producers send to directly. Sending to the queue (rather than publishing to an exchange)
/// means a message accepted while no worker is running still waits in RabbitMQ instead of being dropped.
/// </summary>
public static class QueueNames
{
    public const string ClassifyImage = "classify-image";
    public const string TrainModel = "train-model";

    public static Uri Address(string queue) => new($"queue:{queue}");
}
