namespace WasteClassifier.Api.Submissions;

/// <summary>The body of every error answer: a stable machine-readable code and a sentence for people.</summary>
public sealed record ApiError(string Error, string Message);

public static class ApiErrors
{
    public static IResult Result(int status, string error, string message) =>
        TypedResults.Json(new ApiError(error, message), statusCode: status);
}
