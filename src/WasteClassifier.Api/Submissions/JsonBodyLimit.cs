using Microsoft.AspNetCore.Mvc;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// The small body limit of the JSON endpoints (<see cref="UploadOptions.EffectiveJsonBodyBytes"/>), as endpoint metadata: routing
/// sets it as the request's body limit, which Kestrel enforces while the body is read, and Security/BadRequests answers a
/// body that declares a larger Content-Length with 413 before anything reads it.
/// </summary>
public static class JsonBodyLimit
{
    public static TBuilder WithJsonBodyLimit<TBuilder>(this TBuilder endpoint, IEndpointRouteBuilder app) where TBuilder : IEndpointConventionBuilder =>
        endpoint.WithMetadata(new RequestSizeLimitAttribute(app.ServiceProvider.GetRequiredService<UploadOptions>().EffectiveJsonBodyBytes));
}
