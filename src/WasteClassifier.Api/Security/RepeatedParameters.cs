using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Security;

/// <summary>
/// Every query parameter of the API takes one value. One given twice (<c>?source=a&amp;source=b</c>) was bound as its
/// values joined with a comma ("a,b"): a filter that matched nothing, or a message about a value the client never sent.
/// </summary>
public sealed class RepeatedParameters(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (context.GetEndpoint() is null) return next(context);
        foreach (var (name, values) in context.Request.Query)
            if (values.Count > 1)
                return ApiErrors.Result(StatusCodes.Status400BadRequest, "repeated_parameter",
                    $"the query parameter '{name}' was given {values.Count} times; give it once").ExecuteErrorAsync(context);
        return next(context);
    }
}
