using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Hosting;

namespace WasteClassifier.Api.Apis;

/// <summary>
/// The health probes in <c>/openapi/v1.json</c>. <c>MapHealthChecks</c> endpoints have no handler method, so the document
/// generator leaves them out; each is marked with a <see cref="HealthProbe"/> and added here as a GET answering
/// <see cref="HealthResponses.ReportView"/> (200, and 503 where a check can fail), or the API's 500 after an exception and
/// 400 for a repeated query parameter. They answer GET and HEAD only (<see cref="ProbeMethods"/>); HEAD is listed with every
/// other GET's (HeadRequests.DocumentAsync).
/// </summary>
public static class HealthProbes
{
    /// <summary>Marks a health probe endpoint; <see cref="CanFail"/>: it runs checks, so it answers 503 when one fails.</summary>
    public sealed record HealthProbe(bool CanFail);

    /// <summary><c>MapHealthChecks</c> answers every method (a POST was a 200); a probe only reads.</summary>
    public static readonly HttpMethodMetadata ProbeMethods = new([HttpMethods.Get, HttpMethods.Head]);

    public const string ReportSchema = "HealthReport";

    public static async Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        var probes = context.ApplicationServices.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Select(e => (Endpoint: e, Probe: e.Metadata.GetMetadata<HealthProbe>())).Where(p => p.Probe is not null).ToList();
        if (probes.Count == 0) return;
        var report = await ReferenceAsync(document, context, typeof(HealthResponses.ReportView), ReportSchema, cancellationToken);
        var error = await ReferenceAsync(document, context, typeof(ApiError), nameof(ApiError), cancellationToken);
        document.Paths ??= [];
        foreach (var (endpoint, probe) in probes)
        {
            var responses = new OpenApiResponses { ["200"] = Json("OK: the status of each check", report) };
            if (probe!.CanFail) responses["503"] = Json("A check failed: the status of each check", report);
            // RepeatedParameters runs before every endpoint, the probes' too.
            responses["400"] = Json("Bad Request: a query parameter given more than once", error);
            responses["500"] = Json("Internal Server Error", error);
            var operation = new OpenApiOperation
            {
                Summary = endpoint.Metadata.GetMetadata<IEndpointSummaryMetadata>()?.Summary,
                Tags = new HashSet<OpenApiTagReference> { new("Service", document) },
                Responses = responses,
            };
            document.Paths[ServiceApi.PathOf(endpoint.RoutePattern)] = new OpenApiPathItem { Operations = new() { [HttpMethod.Get] = operation } };
        }
    }

    private static OpenApiResponse Json(string description, IOpenApiSchema schema) => new()
    {
        Description = description,
        Content = new Dictionary<string, OpenApiMediaType> { ["application/json"] = new() { Schema = schema } },
    };

    /// <summary>A reference to the component named <paramref name="name"/>, generated from <paramref name="type"/> unless a route already declared it.</summary>
    private static async Task<IOpenApiSchema> ReferenceAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, Type type, string name,
        CancellationToken cancellationToken)
    {
        if (document.Components?.Schemas?.ContainsKey(name) != true)
            document.AddComponent(name, await context.GetOrCreateSchemaAsync(type, null, cancellationToken));
        return new OpenApiSchemaReference(name, document);
    }
}
