using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using WasteClassifier.Api.Security;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>Failures of a save that leave unknown whether its COMMIT went through.</summary>
public static class CommitOutcomes
{
    /// <summary>
    /// A save that failed this way may be committed all the same, so the caller reads its rows by their ids before it
    /// answers 503 (a client without an Idempotency-Key would retry and submit twice). PostgreSQL's retrying strategy ran
    /// out of tries (<see cref="RetryLimitExceededException"/>) after a first one whose COMMIT went through and whose
    /// answer was lost; or the connection or a timeout failed the save, perhaps during its COMMIT. Not a refusal of the data,
    /// which saved nothing. Callers catch a <c>DbUpdateException</c> (a retried INSERT that met its own rows, a race) first.
    /// </summary>
    public static bool Unknown(Exception e) => e is RetryLimitExceededException || DependencyFailures.IsUnavailable(e);

    /// <summary>
    /// Runs <paramref name="read"/> (whether a failed save's rows are there) once (<see cref="SingleAttempt.ReadOnceAsync"/>):
    /// the save has had its retries, and a failed read is a 503 as well.
    /// </summary>
    public static Task<T> ReadOnceAsync<T>(DbContext db, Func<CancellationToken, Task<T>> read, CancellationToken cancellationToken) =>
        SingleAttempt.ReadOnceAsync(db, read, cancellationToken);
}
