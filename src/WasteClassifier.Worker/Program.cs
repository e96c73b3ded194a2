using Serilog;
using WasteClassifier.Components;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Worker;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddClassifierWorkerHost(builder.Configuration);
builder.Services.AddSerilog((services, logger) => LoggingExtensions.Configure(logger, builder.Configuration, builder.Environment, "worker"));

using var host = builder.Build();
await host.Services.PrepareServiceAsync();
await host.RunAsync();
