using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Serilog;
using Serilog.Core;
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

    [Fact]
    public async Task ClientGoneMidUpload_499LoggedWithTheUploadIdRedacted()
    {
        // The API's own pieces, in its order: the request log (its properties from RequestLogPaths, every event through
        // the enricher), then ClientAborts, around a handler whose client went away while it read the body.
        var events = new ConcurrentQueue<LogEvent>();
        using var logger = new LoggerConfiguration().MinimumLevel.Verbose().Enrich.With<RequestLogPaths.Enricher>()
            .WriteTo.Sink(new Collect(events)).CreateLogger();
        var services = new ServiceCollection().AddLogging().AddSerilog(logger).BuildServiceProvider();
        var app = new ApplicationBuilder(services);
        app.UseSerilogRequestLogging(logging =>
        {
            logging.Logger = logger;
            logging.GetMessageTemplateProperties = RequestLogPaths.Properties;
        });
        app.UseMiddleware<ClientAborts>();
        using var gone = new CancellationTokenSource();
        app.Run(context =>
        {
            gone.Cancel();
            throw new IOException("The client reset the request stream.");
        });
        var id = Guid.NewGuid();
        var context = new DefaultHttpContext { RequestServices = services, RequestAborted = gone.Token };
        context.Request.Method = "PUT";
        context.Request.Path = $"/v1/uploads/{id}/content";

        await app.Build()(context);

        var logged = Assert.Single(events, e => e.Properties.ContainsKey("StatusCode"));
        Assert.Equal("499", logged.Properties["StatusCode"].ToString());
        Assert.Equal(LogEventLevel.Information, logged.Level);
        Assert.Equal("\"/v1/uploads/***/content\"", logged.Properties["RequestPath"].ToString());
        var everything = string.Join("\n", events.Select(e => e.RenderMessage() + " " + string.Join(" ", e.Properties.Values)));
        Assert.DoesNotContain(id.ToString(), everything, StringComparison.OrdinalIgnoreCase);
    }

    private sealed class Collect(ConcurrentQueue<LogEvent> events) : ILogEventSink
    {
        public void Emit(LogEvent logEvent) => events.Enqueue(logEvent);
    }
}
