using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace WasteClassifier.Infrastructure.Messaging;

public static class MessagingExtensions
{
    /// <summary>
    /// Adds MassTransit on the configured transport. <paramref name="addConsumers"/> registers the consumers this
    /// process runs (none for an API-only process, the classifier for a worker, both for the embedded default).
    /// </summary>
    public static IServiceCollection AddClassifierBus(this IServiceCollection services, IConfiguration configuration,
        Action<IBusRegistrationConfigurator> addConsumers)
    {
        var options = (configuration.GetSection(MessagingOptions.Section).Get<MessagingOptions>() ?? new MessagingOptions()).Validated();
        services.AddSingleton(options);
        services.AddMassTransit(bus =>
        {
            bus.SetKebabCaseEndpointNameFormatter();
            // MassTransit 8.4+ reports usage telemetry over the internet by default; a facility's services must not call out.
            bus.DisableUsageTelemetry();
            addConsumers(bus);
            switch (options.Transport.ToLowerInvariant())
            {
                case MessagingTransports.InMemory:
                    bus.UsingInMemory((context, cfg) => cfg.ConfigureEndpoints(context));
                    break;
                case MessagingTransports.RabbitMq:
                    var rabbit = options.RabbitMq;
                    bus.UsingRabbitMq((context, cfg) =>
                    {
                        cfg.Host(rabbit.Host, rabbit.PortOrDefault, rabbit.VirtualHost, host =>
                        {
                            host.Username(rabbit.Username);
                            host.Password(rabbit.Password);
                            if (rabbit.UseTls)
                            {
                                var logger = (context.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance)
                                    .CreateLogger(typeof(BrokerCertificateValidator));
                                var validator = new BrokerCertificateValidator(rabbit.ServerNameOrHost, rabbit.LoadCaCertificates(),
                                    string.IsNullOrWhiteSpace(rabbit.CaCertificatePath) ? null : rabbit.CaCertificatePath, logger,
                                    context.GetService<TimeProvider>());
                                host.UseSsl(ssl =>
                                {
                                    ssl.ServerName = rabbit.ServerNameOrHost;
                                    // MassTransit's default accepts an untrusted chain (its AcceptablePolicyErrors include
                                    // RemoteCertificateChainErrors); this callback replaces that check, and lets through only a
                                    // certificate the system or the given CA trusts, for the expected name.
                                    ssl.CertificateValidationCallback = validator.Validate;
                                });
                            }
                        });
                        cfg.ConfigureEndpoints(context);
                    });
                    break;
                default:
                    throw new InvalidOperationException($"Messaging:Transport '{options.Transport}' is not supported; use inmemory or rabbitmq");
            }
        });
        return services;
    }
}
