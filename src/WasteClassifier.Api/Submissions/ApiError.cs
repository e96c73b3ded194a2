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
        context.Request.Path.Equals(PredictPath, StringComparison.OrdinalIgnoreCase) && result is JsonHttpResult<ApiError> { Value: { } error } json
            ? TypedResults.Json(new { success = false, error = error.Error, message = error.Message }, statusCode: json.StatusCode)
            : result;

    public static Task ExecuteErrorAsync(this IResult result, HttpContext context) => For(context, result).ExecuteAsync(context);
}
