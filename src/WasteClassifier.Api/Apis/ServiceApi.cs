using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using WasteClassifier.Api.Stats;
using WasteClassifier.Api.Security;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Apis;

/// <summary>The original Flask API's routes, kept for its clients: /, /health, /classes, /predict, /stats.</summary>
public static class ServiceApi
{
    private static readonly DateTime StartedAt = System.Diagnostics.Process.GetCurrentProcess().StartTime.ToUniversalTime();

    public static void MapServiceApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("").WithTags("Service");
        api.MapGet("/", Index).WithName("Index").WithSummary("Browsers (Accept: text/html) get the web interface; other clients the service and its endpoints as JSON")
            .Produces<ServiceDescription>().AlsoAnswers("text/html").WithoutDependencies();
        // An outage is in its body (components), with a 200: TryGetActiveAsync and the health checks catch it, each trying once.
        api.MapGet("/health", HealthAsync).WithName("Health").WithSummary("Status, uptime, model, and the broker, database and object store").Produces<ServiceHealth>()
            .WithoutDependencies();
        api.MapGet("/classes", ClassesAsync).WithName("Classes").WithSummary("The class names, in the model's output order").Produces<ClassList>();
        // The original API's errors: every one carries success=false (PredictFailure), the middleware's too (declared by
        // WithCommonErrors, which sees PredictRoute).
        api.MapPost(ApiErrors.PredictPath, PredictAsync).WithName("Predict").WithSummary("Classify one image (field 'image') through the queue and wait for the result").DisableAntiforgery()
            .AcceptsForm(new ApiResponses.FormBody(ClassificationsApi.ImageField, ManyFiles: false, ["source"]))
            .WithMetadata(PredictRoute.Instance).Produces<Prediction>()
            .Produces<PredictFailure>(StatusCodes.Status400BadRequest).Produces<PredictFailure>(StatusCodes.Status403Forbidden)
            .Produces<PredictFailure>(StatusCodes.Status413PayloadTooLarge).Produces<PredictFailure>(StatusCodes.Status422UnprocessableEntity)
            .Produces<PredictFailure>(StatusCodes.Status504GatewayTimeout);
        api.MapGet("/stats", async (StatsSnapshots stats, CancellationToken ct) => TypedResults.Ok(await stats.GetAsync(ct)))
            .WithName("Stats").WithSummary("Counts, latency percentiles and throughput across every worker (shared by this replica's callers for Stats__CacheSeconds)");
    }

    /// <summary>The web interface for browsers; the original JSON for everything else (curl sends */*).</summary>
    public static IResult Index(HttpContext context, IWebHostEnvironment environment, EndpointDataSource endpoints)
    {
        context.Response.Headers.Vary = "Accept";
        var accept = context.Request.GetTypedHeaders().Accept;
        var wantsHtml = accept.Any(a => a.MediaType.Equals("text/html", StringComparison.OrdinalIgnoreCase));
        var page = environment.WebRootFileProvider.GetFileInfo("index.html");
        return wantsHtml && page.Exists ? TypedResults.Stream(page.CreateReadStream(), "text/html; charset=utf-8") : Describe(endpoints);
    }

    /// <summary>What <c>GET /</c> answers a client that is not a browser: the service, and "METHOD /path" → summary for each route.</summary>
    public sealed record ServiceDescription(string Name, string Description, SortedDictionary<string, string> Endpoints);

    private static IResult Describe(EndpointDataSource endpoints) => TypedResults.Ok(new ServiceDescription(
        "WasteClassifier",
        "Classifies photographs of waste into nine classes through a queue of batched ONNX workers",
        Routes(endpoints)));

    /// <summary>
    /// "METHOD /path" → summary for every mapped route, read from the routes themselves: a hand-written list left out half
    /// of them. Routes without methods (the health probes) answer GET among others.
    /// </summary>
    public static SortedDictionary<string, string> Routes(EndpointDataSource endpoints)
    {
        var routes = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var endpoint in endpoints.Endpoints.OfType<RouteEndpoint>())
        {
            var path = endpoint.Metadata.GetMetadata<Extensions.DocumentedRoute>()?.Path ?? PathOf(endpoint.RoutePattern);
            var summary = endpoint.Metadata.GetMetadata<Microsoft.AspNetCore.Http.Metadata.IEndpointSummaryMetadata>()?.Summary ?? endpoint.DisplayName ?? "";
            foreach (var method in endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["GET"])
                routes.TryAdd($"{method} {path}", summary);
        }
        return routes;
    }

    /// <summary>The route as a client writes it: parameters by name, without their constraints or catch-all marks.</summary>
    public static string PathOf(Microsoft.AspNetCore.Routing.Patterns.RoutePattern pattern) =>
        "/" + string.Join('/', pattern.PathSegments.Select(segment => string.Concat(segment.Parts.Select(part => part switch
        {
            Microsoft.AspNetCore.Routing.Patterns.RoutePatternLiteralPart literal => literal.Content,
            Microsoft.AspNetCore.Routing.Patterns.RoutePatternParameterPart parameter => $"{{{parameter.Name}}}",
            Microsoft.AspNetCore.Routing.Patterns.RoutePatternSeparatorPart separator => separator.Content,
            _ => "",
        }))));

    public static async Task<IResult> HealthAsync(HealthCheckService health, [FromServices] ModelRegistry registry, ClassifierDbContext db, IServiceProvider services,
        ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var report = await health.CheckHealthAsync(cancellationToken);
        // The registry is not read when the database check found the database down: that read could only fail, and it held
        // the answer ~15 s (EF's retries) past a monitor's timeout. The outage is in components.database.
        var databaseDown = report.Entries.TryGetValue(ObservabilityExtensions.DatabaseCheck, out var database)
            && database.Status == HealthStatus.Unhealthy;
        var active = databaseDown ? null : await TryGetActiveAsync(registry, db, cancellationToken);
        // The broker's detail in fixed words (HealthResponses.Description): MassTransit's own text is only logged.
        var logger = loggers.CreateLogger(typeof(HealthResponses).FullName!);
        var components = report.Entries.ToDictionary(e => ComponentName(e.Key), e => new ComponentHealth(e.Value.Status.ToString().ToLowerInvariant(), HealthResponses.Description(e.Key, e.Value, logger)));
        var loaded = services.GetService<IModelProvider>()?.LoadedCard;
        return TypedResults.Ok(new ServiceHealth(
            report.Status == HealthStatus.Healthy ? "healthy" : report.Status == HealthStatus.Degraded ? "degraded" : "unhealthy",
            Math.Round((DateTime.UtcNow - StartedAt).TotalSeconds, 1),
            // In-process worker: its loaded model. API-only process: whether the registry has an active model.
            loaded is not null || services.GetService<IModelProvider>() is null && active is not null,
            loaded?.Version ?? active?.Version,
            components,
            DateTimeOffset.UtcNow));
    }

    /// <summary>The original API's <c>GET /health</c>, with each dependency's state in <c>components</c>.</summary>
    public sealed record ServiceHealth(string Status, double UptimeSeconds, bool ModelLoaded, string? ModelVersion, Dictionary<string, ComponentHealth> Components,
        DateTimeOffset Timestamp);

    public sealed record ComponentHealth(string Status, string? Detail);

    public sealed record ClassList(IReadOnlyList<string> Classes, int NumClasses);

    /// <summary>The original API's <c>POST /predict</c> result.</summary>
    public sealed record Prediction(bool Success, Guid Id, string? PredictedClass, double? Confidence, double ConfidencePercent,
        IReadOnlyDictionary<string, double>? AllPredictions, string? ModelVersion, double LatencyMs, DateTimeOffset Timestamp);

    /// <summary>
    /// The original API's error: an <see cref="ApiError"/> with <c>success: false</c>; <c>id</c> once the image was queued,
    /// and <c>url</c> to poll on a timeout (both left out otherwise, as that API did). Properties, not a constructor's
    /// parameters, so the document does not mark those two required.
    /// </summary>
    public sealed record PredictFailure
    {
        public bool Success { get; init; }

        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public Guid? Id { get; init; }

        public string? Error { get; init; }

        public string? Message { get; init; }

        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public string? Url { get; init; }
    }

    private static string ComponentName(string check) => HealthResponses.IsBroker(check) ? "broker" : check;

    public static async Task<IResult> ClassesAsync([FromServices] ModelRegistry registry, CancellationToken cancellationToken)
    {
        var active = await registry.GetActiveAsync(cancellationToken);
        var labels = active is null ? ModelRegistry.ProductClasses : ModelRegistry.ReadCard(active).Labels;
        return TypedResults.Ok(new ClassList(labels, labels.Count));
    }

    /// <summary>The active model, or null when it cannot be read: tried once (a database that fails now is reported by its check).</summary>
    private static async Task<ModelRecord?> TryGetActiveAsync(ModelRegistry registry, ClassifierDbContext db, CancellationToken cancellationToken)
    {
        try
        {
            return await new SingleAttempt(db).ExecuteAsync(registry.GetActiveAsync, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return null; // the database check reports the outage
        }
    }

    public static async Task<IResult> PredictAsync(HttpRequest request, [FromServices] ClassificationSubmitter submitter, [FromServices] UploadOptions options,
        [FromServices] ClassificationResultWaiter waiter, ClassifierDbContext db, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        var (upload, error) = await MultipartUploads.ReadAsync(request, ClassificationsApi.ImageField, options, cancellationToken);
        if (error is not null) return ApiErrors.For(request.HttpContext, error);
        // The source is optional here (the original API had none), but a key bound to several sources or a prefix must name it.
        var given = upload!.Form["source"].ToString();
        if (SourceNames.Validate(given) is { } invalid) return ApiErrors.For(request.HttpContext, invalid);
        if (SourceBindings.Resolve(request.HttpContext.User, given, out var source) is { } refused) return ApiErrors.For(request.HttpContext, refused);
        var result = await submitter.SubmitAsync(upload.Files.Take(1).ToList(), source, idempotencyKey: null, cancellationToken);
        Observability.ApiMetrics.Submitted(result);
        if (result.Items.Count == 0)
        {
            var rejected = result.Rejected[0];
            var status = rejected.Error == ImageIntake.FileTooLarge ? StatusCodes.Status413PayloadTooLarge : StatusCodes.Status400BadRequest;
            return TypedResults.Json(new PredictFailure { Success = false, Error = rejected.Error, Message = rejected.Message }, statusCode: status);
        }

        var id = result.Items[0].Id;
        var deadline = TimeSpan.FromSeconds(options.PredictTimeoutSeconds);
        for (var pass = 0; started.Elapsed < deadline; pass++)
        {
            // Watched before the read, so a result announced between the two is not missed. On the first pass a row this
            // process just queued, and nobody has announced, exists and is not final: it need not be read (as in a long poll).
            using var watch = waiter.Watch(id);
            var row = pass == 0 && waiter.IsQueuedHere(id) ? null : await db.Classifications.AsNoTracking().FirstAsync(c => c.Id == id, cancellationToken);
            if (row is null || !ClassificationStatus.IsFinal(row.Status))
                row = await watch.WaitAsync(deadline - started.Elapsed, cancellationToken) ?? row;
            if (row is null) continue;
            if (row.Status == ClassificationStatus.Completed)
            {
                return TypedResults.Ok(new Prediction(true, id, row.PredictedClass, row.Confidence, Math.Round(row.Confidence!.Value * 100, 2),
                    Components.Classifying.ClassificationResultJson.Deserialize(row.AllPredictions), row.ModelVersion,
                    Math.Round(started.Elapsed.TotalMilliseconds, 1), DateTimeOffset.UtcNow));
            }
            if (row.Status == ClassificationStatus.Failed)
                return TypedResults.Json(new PredictFailure { Success = false, Id = id, Error = row.ErrorCode, Message = row.Error }, statusCode: StatusCodes.Status422UnprocessableEntity);
        }
        return TypedResults.Json(new PredictFailure
        {
            Success = false,
            Id = id,
            Error = "timeout",
            Message = $"no result within {options.PredictTimeoutSeconds} s; the image stays queued, poll {ClassificationSubmitter.UrlFor(id)}",
            Url = ClassificationSubmitter.UrlFor(id),
        }, statusCode: StatusCodes.Status504GatewayTimeout);
    }
}
