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
    /// <summary>How long the read of a failed save's rows (<see cref="ReadOnceAsync"/>) may run: a few rows by primary key.</summary>
    public static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(5);

    protected override bool ShouldRetryOn(Exception exception) => false;

    /// <summary>
    /// Runs <paramref name="read"/> (whether a failed save's rows are there) once, with a <see cref="ReadTimeout"/> command
    /// timeout. Through the context's retrying strategy (PostgreSQL: 5 retries, ~14 s) a database that is down answered
    /// only after the save's retries and as many again; the save has had its retries, and a failed read fails the caller too.
    /// </summary>
    public static async Task<T> ReadOnceAsync<T>(DbContext db, Func<CancellationToken, Task<T>> read, CancellationToken cancellationToken)
    {
        var timeout = db.Database.GetCommandTimeout();
        db.Database.SetCommandTimeout(ReadTimeout);
        try
        {
            return await new SingleAttempt(db).ExecuteAsync(read, cancellationToken);
        }
        finally
        {
            db.Database.SetCommandTimeout(timeout);
        }
    }
}
