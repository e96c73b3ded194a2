using Serilog;
using WasteClassifier.Components;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Trainer;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddClassifierTrainerHost(builder.Configuration);
// Probes and Prometheus on their own small listener (Metrics:Port; 0 turns it off).
builder.Services.AddObservabilityListener(builder.Configuration, defaultPort: 9092);
builder.Services.AddSerilog((_, logger) => LoggingExtensions.Configure(logger, builder.Configuration, builder.Environment, "trainer"));

using var host = builder.Build();
await host.Services.PrepareServiceAsync();
await host.RunAsync();
