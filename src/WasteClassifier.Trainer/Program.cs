using Serilog;
using WasteClassifier.Components;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Trainer;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddClassifierTrainerHost(builder.Configuration);
builder.Services.AddSerilog((_, logger) => LoggingExtensions.Configure(logger, builder.Configuration, builder.Environment, "trainer"));

using var host = builder.Build();
await host.Services.PrepareServiceAsync();
await host.RunAsync();
