using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using WasteClassifier.Api.Apis;

namespace WasteClassifier.Api.Extensions;

/// <summary>
/// How clients write a route that the router can only match with a catch-all parameter (a catch-all must be the last
/// segment, so <c>/v1/sources/{name}/composition</c>, where a name may hold '/', is <c>/v1/sources/{**path}</c>). GET /
/// and the OpenAPI document show <see cref="Path"/>, with <see cref="CatchAll"/> renamed <see cref="Parameter"/>.
/// </summary>
public sealed record DocumentedRoute(string Path, string CatchAll, string Parameter, string Description)
{
    /// <summary>Moves each such route's OpenAPI path item to its documented path, and renames its parameter.</summary>
    public static Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        var endpoints = context.ApplicationServices.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>();
        foreach (var endpoint in endpoints)
        {
            if (endpoint.Metadata.GetMetadata<DocumentedRoute>() is not { } route || document.Paths is null
                || !document.Paths.Remove(ServiceApi.PathOf(endpoint.RoutePattern), out var item)) continue;
            foreach (var operation in item.Operations?.Values.AsEnumerable() ?? [])
                foreach (var parameter in operation.Parameters?.OfType<OpenApiParameter>() ?? [])
                    if (parameter.In == ParameterLocation.Path && parameter.Name == route.CatchAll)
                        (parameter.Name, parameter.Description) = (route.Parameter, route.Description);
            document.Paths[route.Path] = item;
        }
        return Task.CompletedTask;
    }
}
