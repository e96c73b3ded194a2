using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.WebUtilities;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Security;

/// <summary>
/// The API's error JSON for what no endpoint answers with a body: no route (or a route constraint that does not match, as
/// <c>/v1/classifications/123</c>), a method the route does not take, and an exception nothing else handles. These were
/// empty bodies. An exception's type and message go to the log only: they may name hosts, folders or SQL.
/// </summary>
public static class FallbackErrors
{
    public static void UseFallbackErrors(this IApplicationBuilder app)
    {
        app.UseExceptionHandler(new ExceptionHandlerOptions { ExceptionHandler = context => InternalError().ExecuteErrorAsync(context) });
        // Only responses without a body: every endpoint's own answer, the health checks' and the static files' are left alone.
        // Nor a request its client aborted (499, see ClientAborts): nobody reads the answer.
        app.UseStatusCodePages(pages => pages.HttpContext.RequestAborted.IsCancellationRequested
            ? Task.CompletedTask
            : Answer(pages.HttpContext).ExecuteErrorAsync(pages.HttpContext));
    }

    private static IResult InternalError() =>
        ApiErrors.Result(StatusCodes.Status500InternalServerError, "internal_error", "the server failed to answer this request; the error is in its log");

    private static IResult Answer(HttpContext context)
    {
        var status = context.Response.StatusCode;
        var request = $"{context.Request.Method} {context.Request.PathBase}{context.Request.Path}";
        return status switch
        {
            StatusCodes.Status404NotFound => ApiErrors.Result(status, "not_found", $"no resource answers {request}; see /openapi/v1.json"),
            StatusCodes.Status405MethodNotAllowed => ApiErrors.Result(status, "method_not_allowed",
                $"{request} is not allowed; this resource takes {context.Response.Headers.Allow}"),
            StatusCodes.Status500InternalServerError => InternalError(),
            // Any other bare status: its reason phrase as the code, e.g. 406 not_acceptable.
            _ => ApiErrors.Result(status, ReasonPhrases.GetReasonPhrase(status).ToLowerInvariant().Replace(' ', '_').Replace("-", "", StringComparison.Ordinal),
                $"{request}: {ReasonPhrases.GetReasonPhrase(status)}"),
        };
    }
}
