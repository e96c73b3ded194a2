using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Apis;

/// <summary>The model registry: list versions, read a card and its metrics, promote or roll back.</summary>
public static class ModelsApi
{
    public static RouteGroupBuilder MapModelsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/v1/models").WithTags("Models");
        api.MapGet("/", ListAsync).WithName("ListModels").WithSummary("Every registered model version, newest first").Produces<ModelList>();
        api.MapGet("/{version}", GetAsync).WithName("GetModel").WithSummary("A model's card and hold-out metrics")
            .Produces<ModelView>().ProducesErrors(StatusCodes.Status404NotFound);
        // 409: the gate refused the candidate (GateRefused, with its decision), unless ?force=true.
        api.MapPost("/{version}/promote", PromoteAsync).WithName("PromoteModel").WithSummary("Make this version the active model; workers swap it in")
            .Produces<PromotedModel>().ProducesErrors(StatusCodes.Status404NotFound).Produces<GateRefused>(StatusCodes.Status409Conflict);
        api.MapPost("/{version}/rollback", RollbackAsync).WithName("RollbackModel").WithSummary("Return to a version that was active before")
            .Produces<RolledBackModel>().ProducesErrors(StatusCodes.Status404NotFound, StatusCodes.Status409Conflict);
        return api;
    }

    public sealed record ModelView(string Version, string Status, string Origin, string? ParentVersion, Guid? TrainingJobId,
        double? Accuracy, double? MacroF1, int? HoldOutCount, DateTimeOffset CreatedAt, DateTimeOffset? PromotedAt, JsonElement? Card, JsonElement? Metrics);

    public sealed record ModelList(IEnumerable<ModelView> Items);

    /// <summary>The answer to a promotion; <c>decision</c> is the gate's recorded one (null for models without a training job), <c>forced</c> when it refused.</summary>
    public sealed record PromotedModel(string Version, string Status, string? PreviousVersion, JsonElement? Decision, bool Forced);

    /// <summary>An <see cref="ApiError"/> (<c>gate_refused</c>) with the gate's recorded decision.</summary>
    public sealed record GateRefused(string Error, string Message, JsonElement Decision);

    public sealed record RolledBackModel(string Version, string Status, string? PreviousVersion);

    public static async Task<IResult> ListAsync(ClassifierDbContext db, CancellationToken cancellationToken)
    {
        var models = await db.Models.AsNoTracking().OrderByDescending(m => m.CreatedAt).ToListAsync(cancellationToken);
        return TypedResults.Ok(new ModelList(models.Select(m => View(m, detailed: false))));
    }

    public static async Task<IResult> GetAsync(string version, ClassifierDbContext db, CancellationToken cancellationToken)
    {
        var model = await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Version == version, cancellationToken);
        return model is null ? NotFound(version) : TypedResults.Ok(View(model, detailed: true));
    }

    public static async Task<IResult> PromoteAsync(string version, bool? force, [FromServices] ModelRegistry registry, ClassifierDbContext db,
        CancellationToken cancellationToken)
    {
        if (await registry.FindAsync(version, cancellationToken) is not { } model) return NotFound(version);
        // A candidate its training job's gate refused (worse than the model it was judged against) is promoted only on an
        // explicit ?force=true: promoted with a plain 200, a refusal was easy to overlook. Models without a recorded decision
        // (bundled, from a directory, imported) are promoted as asked.
        var decisionJson = model.TrainingJobId is { } jobId
            ? await db.TrainingJobs.AsNoTracking().Where(j => j.Id == jobId).Select(j => j.DecisionJson).FirstOrDefaultAsync(cancellationToken)
            : null;
        var decision = PromotionDecision.FromJson(decisionJson);
        using var recorded = decisionJson is null ? null : JsonDocument.Parse(decisionJson);
        if (decision is { Refused: true } && force != true)
            return TypedResults.Json(new GateRefused("gate_refused",
                $"the promotion gate refused model {version} ({string.Join("; ", decision.Reasons.Take(3))}); " +
                    $"POST /v1/models/{version}/promote?force=true promotes it anyway",
                recorded!.RootElement.Clone()), statusCode: StatusCodes.Status409Conflict);
        var previous = await registry.PromoteAsync(version, cancellationToken);
        // The gate's recorded decision, so that an override (or a candidate kept by promote=manual) says what it overrode.
        return TypedResults.Ok(new PromotedModel(version, ModelStatus.Active, previous, recorded?.RootElement.Clone(), decision is { Refused: true }));
    }

    public static async Task<IResult> RollbackAsync(string version, [FromServices] ModelRegistry registry, CancellationToken cancellationToken)
    {
        var model = await registry.FindAsync(version, cancellationToken);
        if (model is null) return NotFound(version);
        if (model.PromotedAt is null)
            return ApiErrors.Result(StatusCodes.Status409Conflict, "never_active", $"model {version} was never active; promote it instead of rolling back to it");
        // Rolling back to the active version changes nothing: it answered 200 as if it had, with the version itself or null as
        // previous. The registry decides under its promotion lock, so a concurrent rollback to it counts too.
        var (rolledBack, previous) = await registry.RollbackAsync(version, cancellationToken);
        if (!rolledBack)
            return ApiErrors.Result(StatusCodes.Status409Conflict, "already_active", $"model {version} is the active version; roll back to one that was active before it");
        return TypedResults.Ok(new RolledBackModel(version, ModelStatus.Active, previous));
    }

    private static IResult NotFound(string version) =>
        ApiErrors.Result(StatusCodes.Status404NotFound, "model_not_found", $"no model version '{version}'");

    private static ModelView View(ModelRecord m, bool detailed)
    {
        JsonElement? metrics = m.MetricsJson is null ? null : JsonDocument.Parse(m.MetricsJson).RootElement.Clone();
        return new ModelView(m.Version, m.Status, m.Origin, m.ParentVersion, m.TrainingJobId,
            // The images those scores were measured on: models scored on different hold-outs are not comparable.
            Number(metrics, "accuracy"), Number(metrics, "macro_f1"), Number(metrics, "count") is { } count ? (int)count : null,
            ClassificationView.Utc(m.CreatedAt), m.PromotedAt is { } p ? ClassificationView.Utc(p) : null,
            detailed ? JsonDocument.Parse(m.CardJson).RootElement.Clone() : null,
            detailed ? metrics : null);
    }

    private static double? Number(JsonElement? json, string name) =>
        json is { ValueKind: JsonValueKind.Object } o && o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
}
