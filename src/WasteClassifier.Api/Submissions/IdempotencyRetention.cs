using Microsoft.EntityFrameworkCore;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// <c>Api:IdempotencyRetentionHours</c> (default 24): how long an <c>idempotent_requests</c> row answers a retry under its
/// key. Past that the key is free for a new request; <see cref="IdempotencySweeper"/> deletes such rows.
/// </summary>
public sealed record IdempotencyOptions(TimeSpan Retention)
{
    public const string RetentionHoursKey = "Api:IdempotencyRetentionHours";
    public const int DefaultRetentionHours = 24;

    public static readonly IdempotencyOptions Default = new(TimeSpan.FromHours(DefaultRetentionHours));

    public static IdempotencyOptions From(IConfiguration configuration)
    {
        var hours = configuration.GetValue(RetentionHoursKey, (double)DefaultRetentionHours);
        if (!(hours > 0) || double.IsInfinity(hours) || hours > TimeSpan.MaxValue.TotalHours / 2)
            throw new InvalidOperationException($"{RetentionHoursKey} must be more than 0 hours; got {hours}");
        return new IdempotencyOptions(TimeSpan.FromHours(hours));
    }

    /// <summary>Rows created before this are expired at <paramref name="now"/>.</summary>
    public DateTime ExpiredBefore(DateTime now) => now - Retention;
}

/// <summary>Deletes expired <c>idempotent_requests</c> rows now and then (a lookup already ignores them; this keeps the table small).</summary>
public sealed class IdempotencySweeper(IServiceScopeFactory scopes, IdempotencyOptions options, TimeProvider clock, ILogger<IdempotencySweeper> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromMinutes(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Interval, clock, stoppingToken);
                await SweepAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning("Sweeping expired Idempotency-Keys failed: {Reason}", e.Message);
            }
        }
    }

    /// <returns>How many expired rows were deleted.</returns>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var before = options.ExpiredBefore(clock.GetUtcNow().UtcDateTime);
        // One indexed range delete (ix_idempotent_requests_created_at); run every few minutes, it finds few rows.
        var total = await db.IdempotentRequests.Where(r => r.CreatedAt < before).ExecuteDeleteAsync(cancellationToken);
        if (total > 0) logger.LogInformation("Deleted {Count} expired Idempotency-Key record(s)", total);
        return total;
    }
}
