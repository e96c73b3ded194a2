using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.Metadata;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Security;

/// <summary>
/// Answers what ASP.NET refuses before a handler runs with the API's error JSON: a typed parameter that does not bind
/// (<c>?limit=abc</c>), a JSON body that does not parse or comes with another content type, a body over Kestrel's limit.
/// Without it such requests got a bare 400 or 415. Needs <see cref="RouteHandlerOptions.ThrowOnBadRequest"/>, which
/// makes minimal APIs throw <see cref="BadHttpRequestException"/> instead of answering the bare status themselves.
/// </summary>
public sealed partial class BadRequests(RequestDelegate next)
{
    public async Task InvokeAsync(HttpContext context)
    {
        // A JSON endpoint's body over its own limit (JsonBodyLimit), refused on its Content-Length before a handler or the
        // framework's binding reads it: the binding takes a body cut off by Kestrel's limit for a client that went away.
        if (JsonLimit(context) is { } limit && context.Request.ContentLength > limit)
        {
            await TooLarge(context).ExecuteErrorAsync(context);
            return;
        }
        try
        {
            await next(context);
        }
        catch (BadHttpRequestException e) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            context.Response.Clear();
            await Answer(context, e).ExecuteErrorAsync(context);
            return;
        }
        // Routing refuses a body of another content type itself, with an empty 415, before any handler runs.
        if (context.Response.StatusCode == StatusCodes.Status415UnsupportedMediaType && !context.Response.HasStarted)
            await ExpectedJson().ExecuteErrorAsync(context);
        // A body without Content-Length (chunked) meets the limit only while the binding reads it, which answers an empty 413.
        else if (context.Response.StatusCode == StatusCodes.Status413PayloadTooLarge && !context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
            await TooLarge(context).ExecuteErrorAsync(context);
    }

    private static long? JsonLimit(HttpContext context) => context.GetEndpoint()?.Metadata.GetMetadata<IRequestSizeLimitMetadata>()?.MaxRequestBodySize;

    /// <summary>413 naming the limit this request was held to: a JSON endpoint's own, or the whole-request limit.</summary>
    private static IResult TooLarge(HttpContext context)
    {
        var (limit, setting) = JsonLimit(context) is { } json
            ? (json, context.RequestServices.GetRequiredService<UploadOptions>().EffectiveJsonBodySetting)
            : (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize, "Uploads__MaxRequestBytes");
        return ApiErrors.Result(StatusCodes.Status413PayloadTooLarge, "request_too_large", limit is { } bytes
            ? $"the request body is over the limit of {bytes:N0} bytes ({setting})"
            : "the request body is over the size limit");
    }

    private static IResult ExpectedJson() =>
        ApiErrors.Result(StatusCodes.Status415UnsupportedMediaType, "expected_json", "send a JSON body with Content-Type: application/json");

    private static IResult Answer(HttpContext context, BadHttpRequestException e)
    {
        if (e.StatusCode == StatusCodes.Status415UnsupportedMediaType) return ExpectedJson();
        if (e.StatusCode == StatusCodes.Status413PayloadTooLarge) return TooLarge(context);
        // The framework's messages name the parameter as declared in C#: "Failed to bind parameter "int? limit" from "abc"."
        var match = ParameterMessage().Match(e.Message);
        if (e.StatusCode != StatusCodes.Status400BadRequest || !match.Success)
            return ApiErrors.Result(e.StatusCode, "bad_request", e.Message);
        var parameter = context.GetEndpoint()?.Metadata.GetOrderedMetadata<IParameterBindingMetadata>()
            .FirstOrDefault(p => p.Name == match.Groups["name"].Value)?.ParameterInfo;
        if (parameter?.GetCustomAttributes().OfType<IFromBodyMetadata>().Any() == true || match.Groups["verb"].Value == "read")
            return ApiErrors.Result(e.StatusCode, "invalid_json", "the body is not valid JSON for this request");
        var name = WireName(parameter) ?? match.Groups["name"].Value;
        var message = match.Groups["verb"].Value == "bind"
            ? $"{name} must be {Expected(parameter?.ParameterType)}; got '{match.Groups["value"].Value}'"
            : $"{name} is required";
        return ApiErrors.Result(e.StatusCode, $"invalid_{name}", message);
    }

    /// <summary>The name the client sends, e.g. <c>step_seconds</c> for <c>[FromQuery(Name = "step_seconds")] int? stepSeconds</c>.</summary>
    private static string? WireName(ParameterInfo? parameter) => parameter?.GetCustomAttributes().Select(a => a switch
    {
        IFromQueryMetadata query => query.Name,
        IFromRouteMetadata route => route.Name,
        IFromHeaderMetadata header => header.Name,
        IFromFormMetadata form => form.Name,
        _ => null,
    }).FirstOrDefault(n => n is not null) ?? parameter?.Name;

    private static string Expected(Type? type) => (Nullable.GetUnderlyingType(type ?? typeof(object)) ?? type) switch
    {
        { } t when t == typeof(int) || t == typeof(long) => "a whole number",
        { } t when t == typeof(double) || t == typeof(float) || t == typeof(decimal) => "a number",
        { } t when t == typeof(bool) => "true or false",
        { } t when t == typeof(Guid) => "a GUID",
        { } t when t == typeof(DateTime) || t == typeof(DateTimeOffset) => "an ISO 8601 time",
        _ => "a valid value",
    };

    [GeneratedRegex("""^(?:Failed to (?<verb>bind|read) parameter|(?<verb>Required) parameter) "(?<type>[^"]*) (?<name>[^" ]+)"(?: from "(?<value>.*)")?""")]
    private static partial Regex ParameterMessage();
}
