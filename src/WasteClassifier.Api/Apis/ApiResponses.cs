using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using WasteClassifier.Api.Security;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Apis;

/// <summary>
/// Response metadata for <c>/openapi/v1.json</c>: handlers return <see cref="IResult"/>, which tells the document nothing,
/// so each route declares its answers (<c>.Produces&lt;T&gt;</c>) and its error statuses, whose body is <see cref="ApiError"/>.
/// </summary>
public static class ApiResponses
{
    /// <summary>Declares each status as an <see cref="ApiError"/> answer.</summary>
    public static TBuilder ProducesErrors<TBuilder>(this TBuilder builder, params int[] statuses) where TBuilder : IEndpointConventionBuilder
    {
        foreach (var status in statuses) builder.WithMetadata(Error(status));
        return builder;
    }

    /// <summary>
    /// The errors the middleware in front of every route in <paramref name="group"/> may answer: 401/403 where the route
    /// needs a key once keys are configured (<see cref="AccessPolicies"/>), 429 from the rate limit, 503 while the database
    /// or object store is down. At the end, as the access rules are, so the route's own metadata is known.
    /// </summary>
    public static TBuilder WithCommonErrors<TBuilder>(this TBuilder group) where TBuilder : IEndpointConventionBuilder
    {
        group.Finally(endpoint =>
        {
            var guarded = !endpoint.Metadata.OfType<IAllowAnonymous>().Any()
                && (endpoint.Metadata.OfType<IAuthorizeData>().Any() || AccessPolicies.PolicyFor(endpoint) is not null);
            if (guarded)
            {
                AddIfMissing(endpoint, StatusCodes.Status401Unauthorized);
                AddIfMissing(endpoint, StatusCodes.Status403Forbidden);
            }
            AddIfMissing(endpoint, StatusCodes.Status429TooManyRequests);
            AddIfMissing(endpoint, StatusCodes.Status503ServiceUnavailable);
        });
        return group;
    }

    private static void AddIfMissing(EndpointBuilder endpoint, int status)
    {
        if (!endpoint.Metadata.OfType<IProducesResponseTypeMetadata>().Any(m => m.StatusCode == status)) endpoint.Metadata.Add(Error(status));
    }

    private static ProducesResponseTypeMetadata Error(int status) => new(status, typeof(ApiError), ["application/json"]);

    /// <summary>
    /// Declares a text answer (CSV, HTML) beside the route's JSON 200: a second <c>.Produces</c> for the same status
    /// replaces the first in the document, losing the JSON schema.
    /// </summary>
    public static RouteHandlerBuilder AlsoAnswers(this RouteHandlerBuilder builder, string contentType) => builder.WithMetadata(new TextAnswer(contentType));

    public sealed record TextAnswer(string ContentType);

    /// <summary>Adds each <see cref="TextAnswer"/> to the operation's 200 as a string.</summary>
    public static Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var content = operation.Responses?.GetValueOrDefault("200")?.Content;
        foreach (var text in context.Description.ActionDescriptor.EndpointMetadata.OfType<TextAnswer>())
            content?.TryAdd(text.ContentType, new OpenApiMediaType { Schema = new OpenApiSchema { Type = JsonSchemaType.String } });
        return Task.CompletedTask;
    }
}
