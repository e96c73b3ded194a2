using Serilog;
using WasteClassifier.Worker;
using WasteClassifier.Infrastructure.Hosting;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddClassifierWorkerHost(builder.Configuration);
builder.Services.AddSerilog((services, logger) => LoggingExtensions.Configure(logger, builder.Configuration, builder.Environment, "worker"));

using var host = builder.Build();
await host.Services.PrepareInfrastructureAsync();
await host.RunAsync();
