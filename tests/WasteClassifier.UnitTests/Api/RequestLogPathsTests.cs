using Serilog.Events;
using Serilog.Parsing;
using WasteClassifier.Api.Observability;

namespace WasteClassifier.UnitTests.Api;

/// <summary>The folder store's upload id (its URL's credential) is taken out of every log event, not only the request log's.</summary>
public sealed class RequestLogPathsTests
{
    [Fact]
    public void Enricher_RequestPathOfAnyEvent_Redacted()
    {
        var id = Guid.NewGuid();
        var logEvent = new LogEvent(DateTimeOffset.UtcNow, LogEventLevel.Warning, null, new MessageTemplateParser().Parse("refused"),
        [
            new LogEventProperty("RequestPath", new ScalarValue($"/v1/uploads/{id}/content")),
            new LogEventProperty("Other", new ScalarValue($"/v1/uploads/{id}/content")),
        ]);

        new RequestLogPaths.Enricher().Enrich(logEvent, null!);

        Assert.Equal("\"/v1/uploads/***/content\"", logEvent.Properties["RequestPath"].ToString());
    }

    [Fact]
    public void Redact_StoreMessageNamingTheStagedKey_IdTakenOut()
    {
        var id = Guid.NewGuid();
        var message = $"object store folder /data/objects cannot store uploads/{id:N}: Access denied /data/objects/waste-images/uploads/{id:N}.tmp";

        var redacted = RequestLogPaths.Redact(message);

        Assert.DoesNotContain(id.ToString("N"), redacted, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("uploads/***", redacted);
    }
}
