using Prometheus;
using Scalar.AspNetCore;
using WasteClassifier.Api.Observability;
using WasteClassifier.Components;
using WasteClassifier.Components.Observability;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Serilog;
using WasteClassifier.Api.Apis;
using WasteClassifier.Api.Extensions;
using WasteClassifier.Api.Security;
using WasteClassifier.Infrastructure.Hosting;

var builder = WebApplication.CreateBuilder(args);
// Every event's RequestPath redacted (the folder store's upload id is a credential), not only the request log's.
builder.Services.AddSerilog((_, logger) => LoggingExtensions.Configure(logger, builder.Configuration, builder.Environment, "api")
    .Enrich.With<RequestLogPaths.Enricher>());
builder.AddClassifierApi();

var app = builder.Build();
await app.Services.PrepareServiceAsync();

// nosniff, no framing, no Referer, the web interface's Content-Security-Policy: on every response, errors included.
app.UseMiddleware<SecurityHeaders>();
// An exception nothing else handles, and a 404 or 405 no endpoint wrote, answer in the API's error JSON.
app.UseFallbackErrors();
app.UseSerilogRequestLogging(logging =>
{
    // Successful reads are what clients poll with; at Information they would be most of the log (and its cost).
    logging.GetLevel = (http, _, error) =>
        error is not null || http.Response.StatusCode >= 500 ? Serilog.Events.LogEventLevel.Error
        : (HttpMethods.IsGet(http.Request.Method) || HttpMethods.IsHead(http.Request.Method)) && http.Response.StatusCode < 400 ? Serilog.Events.LogEventLevel.Debug
        : Serilog.Events.LogEventLevel.Information;
    // The folder store's upload URL carries its credential, the upload id: logged as /v1/uploads/***/content.
    logging.GetMessageTemplateProperties = RequestLogPaths.Properties;
});
// Under the embedded default (no keys), a loopback request addressed by a name rebound to 127.0.0.1 is refused (421).
app.UseMiddleware<UnexpectedHosts>();
// A write from another site's page (Origin, Sec-Fetch-Site) is refused before anything runs: logged, but no work done.
app.UseMiddleware<CrossSiteRequests>();
// The web interface's files: revalidated on each load (ETag) so a deploy shows at once.
app.UseStaticFiles(new StaticFileOptions { OnPrepareResponse = files => files.Context.Response.Headers.CacheControl = "no-cache" });
// HEAD is routed as GET (Extensions/HeadRequests.cs), so it goes before routing.
app.UseMiddleware<HeadRequests>();
app.UseRouting();
// HEAD while the metrics take a request's labels, GET inside them (HeadRequests.cs).
app.UseMiddleware<HeadRequests.HeadForMetrics>();
// Among the API's own families, so only the API exports them.
app.UseHttpMetrics(http => http.SetMetricFactory(Metrics.WithCustomRegistry(ClassifierMetrics.ApiRegistry)));
app.UseMiddleware<HeadRequests.RestoreForMetrics>();
// Inside the request log and the metrics: a request its client aborted is a 499 there, not a 500 error.
app.UseMiddleware<ClientAborts>();
app.UseClassifierSecurity();
app.UseMiddleware<RepeatedParameters>();
// Built once and rate limited (Extensions/OpenApiDocumentCache.cs): MapOpenApi rebuilt it on every request.
OpenApiDocumentCache.Map(app);
// Interactive reference for /openapi/v1.json. Scalar serves its script from the package; without its web fonts nothing leaves the network.
// Rate limited per client as the document is (the group: the page and its script); they were free to fetch without end.
app.MapScalarApiReference(scalar => scalar.WithTitle("WasteClassifier API").DisableDefaultFonts()).RequireRateLimiting(AccessPolicies.RateLimit);
app.MapPrometheusMetrics(app.Services, context => app.Services.GetRequiredService<QueueGauges>().RefreshAsync(context.RequestAborted));
// API keys and rate limits for every API route (Security/AccessPolicies.cs), and the errors those and outages answer in
// the OpenAPI document (Apis/ApiResponses.cs): map API endpoints on `api`.
var api = app.MapGroup("").WithAccessRules().WithCommonErrors();
api.MapDashboardApi();
api.MapClassificationsApi();
api.MapUploadsApi();
api.MapSourcesApi();
api.MapServiceApi();
api.MapModelsApi();
api.MapTrainingJobsApi();
api.MapSamplesApi();
api.MapWorkersApi();
// Both answer JSON (HealthResponses): the status of each check and a description that names what is wrong, never a secret.
// Marked for the OpenAPI document (Apis/HealthProbes.cs), which the generator would leave them out of.
app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = HealthResponses.WriteAsync })
    .WithSummary("Liveness probe: 200 while the process answers").WithMetadata(new HealthProbes.HealthProbe(CanFail: false), HealthProbes.ProbeMethods);
app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains("ready"), ResponseWriter = HealthResponses.WriteAsync })
    .WithSummary("Readiness probe: 200 when the checks tagged ready pass, else 503").WithMetadata(new HealthProbes.HealthProbe(CanFail: true), HealthProbes.ProbeMethods);

app.Run();
