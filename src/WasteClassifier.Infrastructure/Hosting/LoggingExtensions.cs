using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Serilog;
using Serilog.Formatting.Compact;

namespace WasteClassifier.Infrastructure.Hosting;

public static class LoggingExtensions
{
    /// <summary>
    /// Serilog for every process: readable console in Development, compact JSON otherwise
    /// (<c>Logging:Format=json|text</c> overrides). Properties pushed with LogContext (classification id,
    /// message id, worker id) appear on every line.
    /// </summary>
    public static void UseClassifierLogging(this IHostBuilder host, string application) =>
        host.UseSerilog((context, _, logger) => Configure(logger, context.Configuration, context.HostingEnvironment, application));

    public static LoggerConfiguration Configure(LoggerConfiguration logger, IConfiguration configuration, IHostEnvironment environment, string application)
    {
        logger.ReadFrom.Configuration(configuration)
            .MinimumLevel.Override("Microsoft.AspNetCore", Serilog.Events.LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.EntityFrameworkCore", Serilog.Events.LogEventLevel.Warning)
            // EF logs its probe of a missing migrations-history table as an error on every fresh database;
            // failing commands still surface as exceptions in the code that issued them.
            .MinimumLevel.Override("Microsoft.EntityFrameworkCore.Database.Command", Serilog.Events.LogEventLevel.Fatal)
            // Likewise a failed save, which the API expects when another process recorded the same image first (it
            // retries with that row; see SeenContentHashes).
            .MinimumLevel.Override("Microsoft.EntityFrameworkCore.Update", Serilog.Events.LogEventLevel.Fatal)
            .Enrich.FromLogContext()
            .Enrich.WithProperty("Application", application);
        var format = configuration["Logging:Format"] ?? (environment.IsDevelopment() ? "text" : "json");
        return format == "json"
            ? logger.WriteTo.Console(new CompactJsonFormatter())
            : logger.WriteTo.Console(outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj} {Properties:j}{NewLine}{Exception}");
    }
}
