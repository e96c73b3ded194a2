using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;
using WasteClassifier.Infrastructure.Hosting;

namespace WasteClassifier.UnitTests.Infrastructure;

public sealed class ExceptionReasonsTests
{
    [Theory]
    [InlineData("42P01", true)] // undefined_table: the migrations were not applied
    [InlineData("42501", false)] // insufficient_privilege: the table is there, the role may not read it
    [InlineData("57P01", false)] // admin_shutdown
    public void IsMissingTable_PostgreSqlOnlyForAnUndefinedTable(string sqlState, bool missing) =>
        Assert.Equal(missing, ExceptionReasons.IsMissingTable(new InvalidOperationException("wrapped", new PostgresException("failed", "ERROR", "ERROR", sqlState))));

    [Theory]
    [InlineData("no such table: classifications", true)]
    [InlineData("database is locked", false)]
    public void IsMissingTable_SqliteByItsMessage(string message, bool missing) =>
        Assert.Equal(missing, ExceptionReasons.IsMissingTable(new SqliteException($"SQLite Error 1: '{message}'.", 1)));

    [Fact]
    public void IsTimeout_ATimeoutAnywhereInTheChain()
    {
        Assert.True(ExceptionReasons.IsTimeout(new NpgsqlException("Exception while reading from stream", new TimeoutException("Timeout during reading attempt"))));
        Assert.False(ExceptionReasons.IsTimeout(new NpgsqlException("Exception while reading from stream", new IOException("reset"))));
    }

    [Fact]
    public void Cause_LooksThroughEfsRetryLimit()
    {
        var cause = new NpgsqlException("Failed to connect to 10.0.0.5:5432");
        Assert.Same(cause, ExceptionReasons.Cause(new RetryLimitExceededException("Maximum number of retries (5) exceeded", cause)));
    }
}
