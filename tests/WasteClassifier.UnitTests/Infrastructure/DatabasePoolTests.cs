using Npgsql;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.UnitTests.Infrastructure;

public sealed class DatabasePoolTests
{
    [Fact]
    public void WithPoolLimit_ConnectionStringWithoutOne_GetsTheConfiguredLimit()
    {
        var result = new NpgsqlConnectionStringBuilder(DatabaseExtensions.WithPoolLimit("Host=db;Username=u;Password=p", 30));

        Assert.Equal(30, result.MaxPoolSize);
        Assert.Equal("db", result.Host);
    }

    [Theory]
    [InlineData("Host=db;Maximum Pool Size=5")]
    [InlineData("Host=db;maximum pool size=5")]
    [InlineData("Host=db;MaxPoolSize=5")]
    public void WithPoolLimit_ConnectionStringSetsItsOwn_KeepsIt(string connectionString)
    {
        Assert.Equal(5, new NpgsqlConnectionStringBuilder(DatabaseExtensions.WithPoolLimit(connectionString, 30)).MaxPoolSize);
    }
}
