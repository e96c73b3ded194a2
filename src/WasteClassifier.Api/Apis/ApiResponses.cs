using System.Text.Json;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.Net.Http.Headers;
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
    /// The errors the middleware in front of every route in <paramref name="group"/> may answer: 400 for a query parameter
    /// given twice (<see cref="RepeatedParameters"/>) or one that does not bind (<see cref="BadRequests"/>); 401/403 where the
    /// route needs a key once keys are configured (<see cref="AccessPolicies"/>), 401 without a valid key, 403 only where a
    /// valid key may still be refused (a client key on an admin route: a client key passes every client route); 403 on every
    /// write (<see cref="CrossSiteRequests"/>); 421 for an unexpected Host while calls without a key are answered
    /// (<see cref="UnexpectedHosts"/>); 429 from the rate limit; 503 while the database or object store is down, except on a
    /// route marked <see cref="WithoutDependencies"/>; 500 for an unexpected failure (<see cref="FallbackErrors"/>,
    /// <see cref="DependencyFailures"/>). On <c>/predict</c> each carries <c>success: false</c> (<see cref="ApiErrors.For"/>).
    /// At the end, as the access rules are, so the route's own metadata is known.
    /// </summary>
    public static TBuilder WithCommonErrors<TBuilder>(this TBuilder group) where TBuilder : IEndpointConventionBuilder
    {
        group.Finally(endpoint =>
        {
            var body = endpoint.Metadata.OfType<PredictRoute>().Any() ? typeof(ServiceApi.PredictFailure) : typeof(ApiError);
            var guarded = !endpoint.Metadata.OfType<IAllowAnonymous>().Any()
                && (endpoint.Metadata.OfType<IAuthorizeData>().Any() || AccessPolicies.PolicyFor(endpoint) is not null);
            AddIfMissing(endpoint, StatusCodes.Status400BadRequest, body);
            if (guarded)
            {
                AddIfMissing(endpoint, StatusCodes.Status401Unauthorized, body);
                if (!ClientPolicyOnly(endpoint)) AddIfMissing(endpoint, StatusCodes.Status403Forbidden, body);
            }
            // CrossSiteRequests refuses a write from another site's page on every route, anonymous ones too.
            if (endpoint.Metadata.OfType<IHttpMethodMetadata>().LastOrDefault()?.HttpMethods.Any(m => !HttpMethods.IsGet(m) && !HttpMethods.IsHead(m) && !HttpMethods.IsOptions(m)) == true)
                AddIfMissing(endpoint, StatusCodes.Status403Forbidden, body);
            AddIfMissing(endpoint, StatusCodes.Status421MisdirectedRequest, body);
            AddIfMissing(endpoint, StatusCodes.Status429TooManyRequests, body);
            AddIfMissing(endpoint, StatusCodes.Status500InternalServerError, body);
            if (!endpoint.Metadata.OfType<NoDependencies>().Any()) AddIfMissing(endpoint, StatusCodes.Status503ServiceUnavailable, body);
        });
        return group;
    }

    /// <summary>
    /// Marks a route that never lets a database or object store failure escape (it touches neither, or reports their state
    /// in its body), so <see cref="DependencyFailures"/> can never answer it 503 and the document does not declare one.
    /// </summary>
    public static RouteHandlerBuilder WithoutDependencies(this RouteHandlerBuilder builder) => builder.WithMetadata(NoDependencies.Instance);

    public sealed class NoDependencies
    {
        public static readonly NoDependencies Instance = new();

        private NoDependencies()
        {
        }
    }

    /// <summary>
    /// Whether the route's only rule is <see cref="AccessPolicies.Client"/>: any valid key passes it, so it answers 401, never
    /// 403 (AccessPolicies.Handler). Read from the [Authorize] the access rules add, or from the rule they will add.
    /// </summary>
    private static bool ClientPolicyOnly(EndpointBuilder endpoint)
    {
        var authorize = endpoint.Metadata.OfType<IAuthorizeData>().ToList();
        return authorize.Count > 0
            ? authorize.All(a => a.Policy == AccessPolicies.Client && string.IsNullOrEmpty(a.Roles))
            : AccessPolicies.PolicyFor(endpoint) == AccessPolicies.Client;
    }

    private static void AddIfMissing(EndpointBuilder endpoint, int status, Type body)
    {
        if (!endpoint.Metadata.OfType<IProducesResponseTypeMetadata>().Any(m => m.StatusCode == status))
            endpoint.Metadata.Add(new ProducesResponseTypeMetadata(status, body, ["application/json"]));
    }

    private static ProducesResponseTypeMetadata Error(int status) => new(status, typeof(ApiError), ["application/json"]);

    /// <summary>
    /// Declares a text answer (CSV, HTML) beside the route's JSON 200: a second <c>.Produces</c> for the same status
    /// replaces the first in the document, losing the JSON schema.
    /// </summary>
    public static RouteHandlerBuilder AlsoAnswers(this RouteHandlerBuilder builder, string contentType) => builder.WithMetadata(new TextAnswer(contentType));

    public sealed record TextAnswer(string ContentType);

    /// <summary>
    /// A multipart/form-data request body as the handler reads it (<see cref="Submissions.MultipartUploads"/>): files in
    /// <see cref="FileField"/> (one, or as many as the limit allows), and text fields, those in <see cref="RepeatedFields"/>
    /// once per file. The handler reads the request itself, so the generator would document no body.
    /// </summary>
    public sealed record FormBody(string FileField, bool ManyFiles, IReadOnlyList<string> Fields, IReadOnlyList<string>? RepeatedFields = null);

    public static RouteHandlerBuilder AcceptsForm(this RouteHandlerBuilder builder, FormBody form) => builder.WithMetadata(form);

    private static OpenApiRequestBody FormRequestBody(FormBody form)
    {
        var file = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" };
        var properties = new Dictionary<string, IOpenApiSchema>
        {
            [form.FileField] = form.ManyFiles ? new OpenApiSchema { Type = JsonSchemaType.Array, Items = file } : file,
        };
        foreach (var field in form.Fields) properties[field] = new OpenApiSchema { Type = JsonSchemaType.String };
        foreach (var field in form.RepeatedFields ?? [])
            properties[field] = new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.String } };
        return new OpenApiRequestBody
        {
            Required = true,
            Content = new Dictionary<string, OpenApiMediaType>
            {
                ["multipart/form-data"] = new() { Schema = new OpenApiSchema { Type = JsonSchemaType.Object, Properties = properties } },
            },
        };
    }

    /// <summary>
    /// Adds each <see cref="TextAnswer"/> to the operation's 200 as a string, and <c>Retry-After</c> to its 429 and 503: the
    /// rate limit (<see cref="RateLimits"/>) and an outage (<see cref="DependencyFailures"/>) always send it.
    /// </summary>
    public static Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var content = operation.Responses?.GetValueOrDefault("200")?.Content;
        foreach (var text in context.Description.ActionDescriptor.EndpointMetadata.OfType<TextAnswer>())
            content?.TryAdd(text.ContentType, new OpenApiMediaType { Schema = new OpenApiSchema { Type = JsonSchemaType.String } });
        if (context.Description.ActionDescriptor.EndpointMetadata.OfType<FormBody>().LastOrDefault() is { } form) operation.RequestBody ??= FormRequestBody(form);
        foreach (var status in new[] { "429", "503" })
            if (operation.Responses?.GetValueOrDefault(status) is OpenApiResponse response)
            {
                response.Headers ??= new Dictionary<string, IOpenApiHeader>();
                response.Headers.TryAdd(HeaderNames.RetryAfter, RetryAfter);
            }
        return Task.CompletedTask;
    }

    /// <summary>
    /// A number as the API writes it. The API's JSON options (<see cref="JsonSerializerDefaults.Web"/>) also read a number
    /// given as a string, so the generator described every number as "number or string" with a pattern, and a generated
    /// client typed each count, id and score as a union; no answer ever holds such a string.
    /// </summary>
    public static Task NumbersAsWrittenAsync(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken cancellationToken)
    {
        if (schema.Type is { } type && (type & (JsonSchemaType.Integer | JsonSchemaType.Number)) != 0 && type.HasFlag(JsonSchemaType.String))
            (schema.Type, schema.Pattern) = (type & ~JsonSchemaType.String, null);
        return Task.CompletedTask;
    }

    /// <summary>
    /// A nullable property of a type with its own schema is written <c>oneOf: [{type: null}, {$ref}]</c>. Where that schema
    /// accepts null too (<see cref="JsonElement"/>'s is <c>{}</c>, any JSON), a null matches both branches and oneOf, which
    /// wants exactly one, refuses it: <c>"card": null</c> failed validation. anyOf says what was meant: null or the type.
    /// </summary>
    public static Task NullOrAnyAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        var seen = new HashSet<OpenApiSchema>(ReferenceEqualityComparer.Instance);
        foreach (var schema in document.Components?.Schemas?.Values ?? []) NullOrAny(schema, seen);
        foreach (var operation in document.Paths?.Values.SelectMany(p => p.Operations?.Values.AsEnumerable() ?? []) ?? [])
        {
            foreach (var media in (operation.Responses?.Values.AsEnumerable() ?? []).SelectMany(r => r.Content?.Values.AsEnumerable() ?? [])
                .Concat(operation.RequestBody?.Content?.Values.AsEnumerable() ?? []))
                NullOrAny(media.Schema, seen);
            foreach (var parameter in operation.Parameters ?? []) NullOrAny(parameter.Schema, seen);
        }
        return Task.CompletedTask;
    }

    private static void NullOrAny(IOpenApiSchema? node, HashSet<OpenApiSchema> seen)
    {
        if (node is not OpenApiSchema schema || !seen.Add(schema)) return; // a reference is fixed where it is defined
        if (schema.OneOf is { Count: > 1 } oneOf && oneOf.Any(b => b is OpenApiSchema { Type: JsonSchemaType.Null }) && schema.AnyOf is null or { Count: 0 })
            (schema.AnyOf, schema.OneOf) = (oneOf, null);
        foreach (var child in (schema.Properties?.Values ?? []).Concat(schema.AllOf ?? []).Concat(schema.AnyOf ?? []).Concat(schema.OneOf ?? [])
            .Append(schema.Items).Append(schema.AdditionalProperties))
            NullOrAny(child, seen);
    }

    private static OpenApiHeader RetryAfter => new()
    {
        Description = "Seconds to wait before trying again",
        Required = true,
        Schema = new OpenApiSchema { Type = JsonSchemaType.Integer, Minimum = "1" },
    };
}
