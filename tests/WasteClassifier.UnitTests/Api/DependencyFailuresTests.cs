using System.Net.Sockets;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using WasteClassifier.Api.Security;

namespace WasteClassifier.UnitTests.Api;

public sealed class DependencyFailuresTests
{
    [Fact]
    public void IsUnavailable_RetriesExhaustedOnAnUnreachableDatabase_True()
    {
        // What EF Core's retrying strategy throws when PostgreSQL keeps refusing (e.g. "too many clients"): a 503, not a 500.
        var exhausted = new RetryLimitExceededException("retries exceeded", new SocketException((int)SocketError.ConnectionRefused));

        Assert.True(DependencyFailures.IsUnavailable(exhausted));
        Assert.False(DependencyFailures.IsUnavailable(new RetryLimitExceededException("retries exceeded", new ArgumentException("bug"))));
    }

    [Theory]
    [InlineData("22001")] // value too long for type character varying(128)
    [InlineData("23502")] // not-null violation
    public void IsUnavailable_PostgresDataOrConstraintError_False(string sqlState)
    {
        var saveFailed = new DbUpdateException("save failed", new Npgsql.PostgresException("refused", "ERROR", "ERROR", sqlState));

        // The same request would fail again: a 500, not a 503 the client retries for ever.
        Assert.False(DependencyFailures.IsUnavailable(saveFailed));
        Assert.True(DependencyFailures.IsDataError(saveFailed));
        Assert.True(DependencyFailures.IsUnavailable(new DbUpdateException("save failed", new Npgsql.PostgresException("too many clients", "FATAL", "FATAL", "53300"))));
    }

    [Fact]
    public void IsUnavailable_UniqueViolation_TrueAsTwoRequestsRacedForOneRow()
    {
        // Two labels of one image at once: the loser's retry finds the winner's row, so 503 with Retry-After, not 500.
        Assert.True(DependencyFailures.IsUnavailable(new DbUpdateException("save failed", new Npgsql.PostgresException("duplicate key", "ERROR", "ERROR", "23505"))));
        Assert.True(DependencyFailures.IsUnavailable(new DbUpdateException("save failed", new Microsoft.Data.Sqlite.SqliteException("UNIQUE constraint failed", 19, 2067))));
    }

    [Fact]
    public void IsUnavailable_FolderStoreWriteFailed_TrueButNotAnyIOException()
    {
        // The embedded default's store on a full or read-only disk: 503 with Retry-After, like an unreachable S3 server.
        Assert.True(DependencyFailures.IsUnavailable(new WasteClassifier.Infrastructure.Storage.ObjectStoreWriteException("no space", new IOException("No space left on device"))));
        Assert.False(DependencyFailures.IsUnavailable(new IOException("a bug elsewhere")));
    }

    [Fact]
    public void IsUnavailable_SqliteConstraintError_False()
    {
        var saveFailed = new DbUpdateException("save failed", new Microsoft.Data.Sqlite.SqliteException("NOT NULL constraint failed", 19, 1299));

        Assert.False(DependencyFailures.IsUnavailable(saveFailed));
        Assert.True(DependencyFailures.IsUnavailable(new DbUpdateException("save failed", new Microsoft.Data.Sqlite.SqliteException("database is locked", 5))));
    }
}
