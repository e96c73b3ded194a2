using Npgsql;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.UnitTests.Infrastructure;

public sealed class DatabasePoolTests
{
    [Fact]
    public void ForService_PlainConnectionString_GetsPoolLimitPreparationAndNoReset()
    {
        var result = new NpgsqlConnectionStringBuilder(DatabaseExtensions.ForService("Host=db;Username=u;Password=p", 30));

        Assert.Equal(30, result.MaxPoolSize);
        Assert.True(result.NoResetOnClose);
        Assert.Equal(32, result.MaxAutoPrepare);
        Assert.Equal(2, result.AutoPrepareMinUsages);
        Assert.Equal("db", result.Host);
    }

    [Theory]
    [InlineData("Host=db;Maximum Pool Size=5")]
    [InlineData("Host=db;maximum pool size=5")]
    [InlineData("Host=db;MaxPoolSize=5")]
    public void ForService_ConnectionStringSetsItsOwnPoolSize_KeepsIt(string connectionString)
    {
        Assert.Equal(5, new NpgsqlConnectionStringBuilder(DatabaseExtensions.ForService(connectionString, 30)).MaxPoolSize);
    }

    [Fact]
    public void ForService_ConnectionStringTurnsPreparationAndResetOff_KeepsThat()
    {
        var result = new NpgsqlConnectionStringBuilder(DatabaseExtensions.ForService("Host=db;Max Auto Prepare=0;No Reset On Close=false", 30));

        Assert.Equal(0, result.MaxAutoPrepare);
        Assert.False(result.NoResetOnClose);
    }
}
