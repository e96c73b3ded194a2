namespace WasteClassifier.Infrastructure.Messaging;

/// <summary>Configuration section <c>Messaging</c>.</summary>
public sealed class MessagingOptions
{
    public const string Section = "Messaging";

    /// <summary><c>inmemory</c> (embedded default: API and worker in one process) or <c>rabbitmq</c>.</summary>
    public string Transport { get; set; } = MessagingTransports.InMemory;

    public RabbitMqOptions RabbitMq { get; set; } = new();

    /// <summary>Queue the API sends classify commands to and workers consume; change it to share a broker between deployments.</summary>
    public string ClassifyQueue { get; set; } = WasteClassifier.Contracts.Messages.QueueNames.ClassifyImage;

    /// <summary>Queue the API and the trainers send training jobs to and trainers consume; change it to share a broker between deployments.</summary>
    public string TrainQueue { get; set; } = WasteClassifier.Contracts.Messages.QueueNames.TrainModel;

    /// <summary>
    /// Images up to this many bytes travel inside their ClassifyImage message as well as to the object store, so workers skip
    /// the store's GET for them; larger ones (camera frames) are only read from the store. 0 turns it off. Each such message is
    /// up to a third larger than the image (base64): mind RabbitMQ's memory if a large backlog can build up.
    /// </summary>
    public int InlineImageBytes { get; set; } = 64 * 1024;

    /// <summary>
    /// Checks the queue names at start: two consumers on one queue would take each other's messages (the training
    /// queue's prefetch of 1 would then throttle classification), and a blank name is a broker error at first use.
    /// </summary>
    public MessagingOptions Validated()
    {
        static void Check(string name, string value)
        {
            // RabbitMQ's limit for a queue name is 255 bytes, and MassTransit adds up to 15 for the queues it derives.
            if (string.IsNullOrWhiteSpace(value) || System.Text.Encoding.UTF8.GetByteCount(value) > 240)
                throw new InvalidOperationException($"Messaging:{name} must be a queue name of 1 to 240 bytes, not '{value}'");
        }
        Check(nameof(ClassifyQueue), ClassifyQueue);
        Check(nameof(TrainQueue), TrainQueue);
        static string[] Derived(string queue) => [queue, $"{queue}-faults", $"{queue}_error", $"{queue}_skipped", $"{queue}-faults_error", $"{queue}-faults_skipped"];
        if (Derived(ClassifyQueue).Intersect(Derived(TrainQueue)).Any())
            throw new InvalidOperationException($"Messaging:TrainQueue '{TrainQueue}' must differ from Messaging:ClassifyQueue '{ClassifyQueue}' " +
                "and the queues derived from it (-faults, _error, _skipped)");
        return this;
    }
}

public sealed class RabbitMqOptions
{
    public string Host { get; set; } = "localhost";
    public ushort Port { get; set; } = 5672;
    public string VirtualHost { get; set; } = "/";
    public string Username { get; set; } = "guest";
    public string Password { get; set; } = "guest";
}

public static class MessagingTransports
{
    public const string InMemory = "inmemory";
    public const string RabbitMq = "rabbitmq";
}
