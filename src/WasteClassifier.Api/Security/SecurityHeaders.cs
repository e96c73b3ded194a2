namespace WasteClassifier.Api.Security;

/// <summary>
/// Browser protections on every response, errors included (set as the headers go out, so a handler that clears the
/// response keeps them): no MIME sniffing, no framing (clickjacking), no Referer sent to other origins, and a
/// Content-Security-Policy that lets the web interface load only its own scripts, styles and images.
/// </summary>
public sealed class SecurityHeaders(RequestDelegate next)
{
    /// <summary>
    /// The web interface (wwwroot) has no inline scripts or style attributes: its modules set styles through the DOM, which
    /// style-src does not restrict. Images: its own, and blob: for the previews of files being uploaded.
    /// </summary>
    public const string Policy =
        "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    /// <summary>The API reference (Scalar) runs an inline script and injects styles: it is only kept out of frames.</summary>
    public const string ReferencePolicy = "frame-ancestors 'none'";

    public const string ReferencePath = "/scalar";

    public Task InvokeAsync(HttpContext context)
    {
        context.Response.OnStarting(() =>
        {
            var headers = context.Response.Headers;
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            // same-origin, not no-referrer: under no-referrer browsers may send "Origin: null" on the web interface's own writes.
            headers["Referrer-Policy"] = "same-origin";
            headers.ContentSecurityPolicy = context.Request.Path.StartsWithSegments(ReferencePath) ? ReferencePolicy : Policy;
            return Task.CompletedTask;
        });
        return next(context);
    }
}
