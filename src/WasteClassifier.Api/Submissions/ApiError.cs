using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.HttpResults;

namespace WasteClassifier.Api.Submissions;

/// <summary>The body of every error answer: a stable machine-readable code and a sentence for people.</summary>
public sealed record ApiError(string Error, string Message);

public static class ApiErrors
{
    public const string PredictPath = "/predict";

    public static IResult Result(int status, string error, string message) =>
        TypedResults.Json(new ApiError(error, message), statusCode: status);

    /// <summary>
    /// The error as this request's client expects it: on the original API's <c>/predict</c> with <c>success: false</c>, as
    /// that API's errors had (its clients test <c>success</c>), whoever answers (the endpoint, a limit, an outage).
    /// </summary>
    public static IResult For(HttpContext context, IResult result) =>
        IsPredict(context) && result is JsonHttpResult<ApiError> { Value: { } error } json
            ? TypedResults.Json(new Apis.ServiceApi.PredictFailure { Success = false, Error = error.Error, Message = error.Message }, statusCode: json.StatusCode)
            : result;

    /// <summary>
    /// By the endpoint routing chose (its marker): routing also takes "/predict/" and other spellings of the path, which a
    /// comparison of the path missed. Without a route endpoint (404, 405, or after an exception, which clears it), by the
    /// path with a trailing '/' trimmed.
    /// </summary>
    private static bool IsPredict(HttpContext context) =>
        (context.GetEndpoint() ?? context.Features.Get<IExceptionHandlerFeature>()?.Endpoint) is RouteEndpoint endpoint
            ? endpoint.Metadata.GetMetadata<PredictRoute>() is not null
            : context.Request.Path.Value?.TrimEnd('/').Equals(PredictPath, StringComparison.OrdinalIgnoreCase) == true;

    public static Task ExecuteErrorAsync(this IResult result, HttpContext context) => For(context, result).ExecuteAsync(context);
}

/// <summary>Marks the original API's <c>/predict</c> endpoint, whose errors carry <c>success: false</c>.</summary>
public sealed class PredictRoute
{
    public static readonly PredictRoute Instance = new();

    private PredictRoute()
    {
    }
}
