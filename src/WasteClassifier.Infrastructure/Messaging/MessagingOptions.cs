using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

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
        // The broker's settings matter only on its transport: the embedded default ignores them.
        if (string.Equals(Transport, MessagingTransports.RabbitMq, StringComparison.OrdinalIgnoreCase))
            RabbitMq.Validate();
        return this;
    }
}

public sealed class RabbitMqOptions
{
    public const ushort DefaultPort = 5672, DefaultTlsPort = 5671;

    public string Host { get; set; } = "localhost";

    /// <summary>The broker's port; unset, 5671 with <see cref="UseTls"/> and 5672 without.</summary>
    public ushort? Port { get; set; }

    public string VirtualHost { get; set; } = "/";
    public string Username { get; set; } = "guest";
    public string Password { get; set; } = "guest";

    /// <summary>Connects over TLS, checking the broker's certificate (its chain and <see cref="ServerName"/>); off by default.</summary>
    public bool UseTls { get; set; }

    /// <summary>The name the broker's certificate must carry; unset, <see cref="Host"/>.</summary>
    public string? ServerName { get; set; }

    /// <summary>
    /// A PEM file of the CA certificate(s) that signed the broker's certificate, trusted for this connection alone besides the
    /// system's store (a private CA need not be installed there).
    /// </summary>
    public string? CaCertificatePath { get; set; }

    /// <summary>The port connected to: <see cref="Port"/>, or the default for <see cref="UseTls"/>.</summary>
    public ushort PortOrDefault => Port ?? (UseTls ? DefaultTlsPort : DefaultPort);

    /// <summary>The name checked in the broker's certificate: <see cref="ServerName"/>, or <see cref="Host"/>.</summary>
    public string ServerNameOrHost => string.IsNullOrWhiteSpace(ServerName) ? Host : ServerName;

    /// <summary>
    /// Checks the TLS settings at start, so that a mistake fails there with its setting named rather than as a connection
    /// that keeps failing (or, for a CA path with TLS off, as traffic silently in clear).
    /// </summary>
    public void Validate()
    {
        if (!UseTls)
        {
            if (!string.IsNullOrWhiteSpace(CaCertificatePath) || !string.IsNullOrWhiteSpace(ServerName))
                throw new InvalidOperationException("Messaging:RabbitMq:CaCertificatePath and ServerName apply only to TLS, " +
                    "but Messaging:RabbitMq:UseTls is false: set UseTls to true (or remove them to connect in clear)");
            // MassTransit turns TLS on by itself for this port, with its default that accepts an untrusted certificate.
            if (Port == DefaultTlsPort)
                throw new InvalidOperationException($"Messaging:RabbitMq:Port {DefaultTlsPort} is RabbitMQ's TLS port, but Messaging:RabbitMq:UseTls " +
                    "is false (MassTransit would connect over TLS without checking the broker's certificate): set UseTls to true");
            return;
        }
        if (!string.IsNullOrWhiteSpace(CaCertificatePath))
            _ = LoadCaCertificates();
    }

    /// <summary>The certificates of <see cref="CaCertificatePath"/> (none when unset); a missing or unreadable file is an error naming it.</summary>
    public X509Certificate2Collection LoadCaCertificates()
    {
        var certificates = new X509Certificate2Collection();
        if (string.IsNullOrWhiteSpace(CaCertificatePath)) return certificates;
        if (!File.Exists(CaCertificatePath))
            throw new InvalidOperationException($"Messaging:RabbitMq:CaCertificatePath '{CaCertificatePath}' does not exist " +
                $"(working directory {Environment.CurrentDirectory}); it must name the PEM file of the CA that signed the broker's certificate");
        try
        {
            certificates.ImportFromPemFile(CaCertificatePath);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"Messaging:RabbitMq:CaCertificatePath '{CaCertificatePath}' could not be read as PEM certificates: {e.Message}", e);
        }
        if (certificates.Count == 0)
            throw new InvalidOperationException($"Messaging:RabbitMq:CaCertificatePath '{CaCertificatePath}' holds no PEM certificate " +
                "(-----BEGIN CERTIFICATE-----)");
        return certificates;
    }
}

public static class MessagingTransports
{
    public const string InMemory = "inmemory";
    public const string RabbitMq = "rabbitmq";
}
