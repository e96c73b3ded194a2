using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.EntityFrameworkCore;
using Microsoft.OpenApi;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Apis;

/// <summary>
/// <c>GET /v1/workers</c>: the worker processes that recorded a heartbeat within a window, idle ones included, each
/// <c>up</c>, <c>missing</c> or <c>stopped</c> by the database's clock (see <see cref="WorkerPresence"/>).
/// </summary>
public static class WorkersApi
{
    public const int DefaultMinutes = 60;
    public const int MaxMinutes = 1440;

    public static RouteGroupBuilder MapWorkersApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/v1/workers").WithTags("Workers");
        api.MapGet("/", ListAsync).WithName("ListWorkers")
            .WithSummary("Workers seen within ?minutes= (default 60): up (a heartbeat within 3 of its intervals), missing, or stopped")
            .Produces<WorkerList>().ProducesErrors(StatusCodes.Status400BadRequest);
        return api;
    }

    /// <summary>One worker process; its times are the database's, but <c>process_started_at</c>, which is its own.</summary>
    public sealed record WorkerView(string WorkerId, string Status, string HostName, DateTimeOffset ProcessStartedAt, string? ModelVersion,
        int HeartbeatSeconds, DateTimeOffset LastSeenAt, DateTimeOffset? StoppedAt);

    /// <summary>The answer to <c>GET /v1/workers</c>: the workers by id, their counts by status, and the database's now they were judged at.</summary>
    public sealed record WorkerList(IReadOnlyList<WorkerView> Workers, int Up, int Missing, int Stopped, int Minutes, DateTimeOffset CheckedAt);

    /// <summary>The schema of <see cref="WorkerView"/> lists the values of <c>status</c>, a string on the wire, so a generated client knows them.</summary>
    public static Task StatusValuesAsync(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken cancellationToken)
    {
        if (context.JsonTypeInfo.Type == typeof(WorkerView) && schema.Properties?.TryGetValue("status", out var property) == true && property is OpenApiSchema status)
        {
            status.Enum = [JsonValue.Create(WorkerPresence.Up), JsonValue.Create(WorkerPresence.Missing), JsonValue.Create(WorkerPresence.Stopped)];
            status.Description = "up: a heartbeat within 3 of its intervals; missing: none for longer; stopped: it shut down gracefully";
        }
        return Task.CompletedTask;
    }

    public static async Task<IResult> ListAsync(ClassifierDbContext db, int? minutes, CancellationToken cancellationToken)
    {
        var window = minutes ?? DefaultMinutes;
        if (window is < 1 or > MaxMinutes)
            return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_minutes", $"minutes must be between 1 and {MaxMinutes}");
        var now = await WorkerPresence.DatabaseNowAsync(db, cancellationToken);
        var since = now.AddMinutes(-window);
        var rows = await db.WorkerHeartbeats.AsNoTracking().Where(w => w.LastSeenAt >= since).OrderBy(w => w.WorkerId).ToListAsync(cancellationToken);
        var workers = rows.Select(w => new WorkerView(w.WorkerId, WorkerPresence.StatusOf(w, now), w.HostName, ClassificationView.Utc(w.ProcessStartedAt),
            w.ModelVersion, w.HeartbeatSeconds, ClassificationView.Utc(w.LastSeenAt), w.StoppedAt is { } stopped ? ClassificationView.Utc(stopped) : null)).ToList();
        return TypedResults.Ok(new WorkerList(workers, Count(WorkerPresence.Up), Count(WorkerPresence.Missing), Count(WorkerPresence.Stopped), window,
            ClassificationView.Utc(now)));

        int Count(string status) => workers.Count(w => w.Status == status);
    }
}
