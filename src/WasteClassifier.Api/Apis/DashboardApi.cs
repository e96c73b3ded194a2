using Microsoft.AspNetCore.Mvc;
using WasteClassifier.Api.Stats;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.Api.Apis;

/// <summary>Time series for the web dashboard's charts; <c>/stats</c> keeps its original shape.</summary>
public static class DashboardApi
{
    private const int MaxPoints = 720;

    public static void MapDashboardApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/stats/timeseries", GetAsync).WithTags("Service").WithName("StatsTimeSeries")
            .WithSummary("Throughput, failures, queue depth and end-to-end latency percentiles per time step, overall, per worker and per model version")
            .Produces<TimeSeries>().ProducesErrors(StatusCodes.Status400BadRequest);
    }

    public static async Task<IResult> GetAsync(TimeSeriesService series, int? minutes, [FromQuery(Name = "step_seconds")] int? stepSeconds, CancellationToken cancellationToken)
    {
        var window = minutes ?? 30;
        var step = stepSeconds ?? 30;
        if (window is < 1 or > 1440) return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_minutes", "minutes must be between 1 and 1440");
        if (step is < 1 or > 3600 || window * 60 / step > MaxPoints)
            return ApiErrors.Result(StatusCodes.Status400BadRequest, "invalid_step", $"step_seconds must be between 1 and 3600 and give at most {MaxPoints} points");
        return TypedResults.Ok(await series.GetAsync(window, step, cancellationToken));
    }
}
