using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;

namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>
/// Runs an operation once, outside the context's retrying strategy (PostgreSQL: 5 retries): a query run inside a strategy's
/// ExecuteAsync is not retried by the context's own one. For reads that answer now and whose caller tries again later (a
/// scrape, a health answer): retried, a database that is down held them for ~15 s.
/// </summary>
public sealed class SingleAttempt(DbContext context) : ExecutionStrategy(context, maxRetryCount: 0, maxRetryDelay: TimeSpan.Zero)
{
    protected override bool ShouldRetryOn(Exception exception) => false;
}
