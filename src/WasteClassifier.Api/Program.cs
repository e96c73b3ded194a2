using WasteClassifier.Components;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Serilog;
using WasteClassifier.Api.Apis;
using WasteClassifier.Api.Extensions;
using WasteClassifier.Infrastructure.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddSerilog((_, logger) => LoggingExtensions.Configure(logger, builder.Configuration, builder.Environment, "api"));
builder.AddClassifierApi();

var app = builder.Build();
await app.Services.PrepareServiceAsync();

app.UseSerilogRequestLogging();
app.MapOpenApi();
app.MapClassificationsApi();
app.MapServiceApi();
app.MapModelsApi();
app.MapTrainingJobsApi();
app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false });
app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains("ready") });

app.Run();
