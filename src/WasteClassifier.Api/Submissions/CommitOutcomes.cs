using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using WasteClassifier.Api.Security;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>Failures of a save that leave unknown whether its COMMIT went through.</summary>
public static class CommitOutcomes
{
    /// <summary>How long the read of a save's rows (<see cref="ReadOnceAsync"/>) may run: a few rows by primary key.</summary>
    public static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// A save that failed this way may be committed all the same, so the caller reads its rows by their ids before it
    /// answers 503 (a client without an Idempotency-Key would retry and submit twice). PostgreSQL's retrying strategy ran
    /// out of tries (<see cref="RetryLimitExceededException"/>) after a first one whose COMMIT went through and whose
    /// answer was lost; or the connection or a timeout failed the save, perhaps during its COMMIT. Not a refusal of the data,
    /// which saved nothing. Callers catch a <c>DbUpdateException</c> (a retried INSERT that met its own rows, a race) first.
    /// </summary>
    public static bool Unknown(Exception e) => e is RetryLimitExceededException || DependencyFailures.IsUnavailable(e);

    /// <summary>
    /// Runs <paramref name="read"/> (whether a failed save's rows are there) once, with a <see cref="ReadTimeout"/> command
    /// timeout. Through the context's retrying strategy (PostgreSQL: 5 retries, ~14 s) a database that is down answered 503
    /// only after the save's retries and as many again; the save has had its retries, and a failed read is a 503 as well.
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
