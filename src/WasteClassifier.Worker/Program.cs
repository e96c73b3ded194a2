using Serilog;
using WasteClassifier.Components;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Worker;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddClassifierWorkerHost(builder.Configuration);
// Probes and Prometheus on their own small listener (Metrics:Port; 0 turns it off).
builder.Services.AddObservabilityListener(builder.Configuration, defaultPort: 9091);
builder.Services.AddSerilog((services, logger) => LoggingExtensions.Configure(logger, builder.Configuration, builder.Environment, "worker"));

using var host = builder.Build();
await host.Services.PrepareServiceAsync();
await host.RunAsync();
