using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using WasteClassifier.Api.Security;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.Api.Submissions;

/// <summary>
/// Saves labelled samples (an upload's, a correction's) that another request may change between their read and the save:
/// DELETE /v1/samples/{id} (no row left to update) or a label of the same image saved first (its image_id is unique). Such a
/// save is staged again from a fresh read, so the delete or the other label is built on rather than answered with a 500.
/// </summary>
public static class SampleSaves
{
    /// <summary>Saves tried before a race is answered with <see cref="Conflict"/>.</summary>
    public const int Attempts = 3;

    public const string Conflict = "sample_conflict";

    /// <summary>
    /// Runs <paramref name="stage"/> (read the samples, add or change them and anything saved with them) and saves; on a
    /// sample race clears the context and does both again. Null once saved; a <c>409 sample_conflict</c> when every
    /// attempt lost a race (nothing was saved). Any other failure is thrown, after one save. A failed save that
    /// <paramref name="savedAnyway"/> (asked only after a failure, which it is given: a <c>DbUpdateException</c>, or one that
    /// leaves the commit's outcome unknown, see <see cref="CommitOutcomes"/>) finds committed counts as saved, as staged last.
    /// </summary>
    public static async Task<IResult?> SaveAsync(ClassifierDbContext db, Func<CancellationToken, Task> stage, CancellationToken cancellationToken,
        Func<Exception, CancellationToken, Task<bool>>? savedAnyway = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            await stage(cancellationToken);
            try
            {
                await db.SaveChangesAsync(cancellationToken);
                return null;
            }
            catch (DbUpdateException e)
            {
                if (savedAnyway is not null && await savedAnyway(e, cancellationToken))
                {
                    // The commit reached PostgreSQL but its answer was lost; the retrying strategy saved again and met this
                    // save's own rows (its new sample's image_id reads as a race). Asked before the race, whose fresh stage
                    // would report nothing relabelled and fail on the job's own key.
                    db.ChangeTracker.AcceptAllChanges();
                    return null;
                }
                if (!IsRace(e)) throw;
                // The save was rolled back: nothing staged is kept, and the next stage reads what the other request left.
                db.ChangeTracker.Clear();
                // Not a 500 (a concurrency conflict) or a 503 (a unique violation reads as an outage): nothing is wrong
                // with the request or the database, and a retry a moment later reads what the other requests left.
                if (attempt == Attempts)
                    return ApiErrors.Result(StatusCodes.Status409Conflict, Conflict,
                        $"other requests changed the labelled sample of an image in this request (deleted or labelled it) each of the {Attempts} times it was saved; nothing was saved, retry the request");
            }
            catch (Exception e) when (savedAnyway is not null && CommitOutcomes.Unknown(e))
            {
                // The retrying strategy ran out of tries (or the connection failed) after a COMMIT that may have gone through:
                // answered 503, a committed job stayed without its message and the client's retry queued a second one.
                if (!await savedAnyway(e, cancellationToken)) throw;
                db.ChangeTracker.AcceptAllChanges();
                return null;
            }
        }
    }

    /// <summary>
    /// A save that failed because a labelled sample changed since it was read: no row left to update, or a sample of the
    /// same image inserted first. Not any failure of a save holding an added sample (on PostgreSQL the failure's entries are
    /// the whole batch): a job's own key, a foreign key or a refused value fail again however often the samples are read.
    /// </summary>
    public static bool IsRace(DbUpdateException e) => e switch
    {
        DbUpdateConcurrencyException concurrency => concurrency.Entries.All(entry => entry.Entity is LabelledSample),
        { InnerException: PostgresException postgres } => postgres.SqlState == PostgresErrorCodes.UniqueViolation
            && postgres.ConstraintName == ClassifierDbContext.LabelledSampleImageIndex,
        // SQLite names the column, not the index: "UNIQUE constraint failed: labelled_samples.image_id".
        { InnerException: SqliteException sqlite } => sqlite.SqliteErrorCode == DependencyFailures.SqliteConstraint
            && sqlite.SqliteExtendedErrorCode == DependencyFailures.SqliteConstraintUnique
            && sqlite.Message.Contains("labelled_samples.image_id", StringComparison.Ordinal),
        _ => false,
    };
}
