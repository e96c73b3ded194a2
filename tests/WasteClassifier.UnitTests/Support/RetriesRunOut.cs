using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Storage;

namespace WasteClassifier.UnitTests.Support;

/// <summary>
/// The first save that adds <typeparamref name="T"/> rows fails as PostgreSQL's retrying strategy ends when its tries run
/// out: <see cref="RetryLimitExceededException"/> over a lost connection. <paramref name="afterCommit"/>: the save went
/// through first (the first try's COMMIT landed, its answer was lost, and the database was away for the retries); otherwise
/// nothing was saved.
/// </summary>
public sealed class RetriesRunOut<T>(bool afterCommit) : SaveChangesInterceptor where T : class
{
    private bool _adding;

    public bool Fired { get; private set; }

    public override ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result,
        CancellationToken cancellationToken = default)
    {
        // Marked here: once saved, the rows are no longer Added.
        _adding = !Fired && eventData.Context!.ChangeTracker.Entries<T>().Any(e => e.State == EntityState.Added);
        if (_adding && !afterCommit) throw Failure();
        return ValueTask.FromResult(result);
    }

    public override ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        if (_adding && afterCommit) throw Failure();
        return ValueTask.FromResult(result);
    }

    private RetryLimitExceededException Failure()
    {
        (Fired, _adding) = (true, false);
        return new RetryLimitExceededException(
            "Maximum number of retries (5) exceeded while executing database operations with 'NpgsqlRetryingExecutionStrategy'. See the inner exception for the most recent failure.",
            new Npgsql.NpgsqlException("Exception while reading from stream", new IOException("Connection reset by peer")));
    }
}
