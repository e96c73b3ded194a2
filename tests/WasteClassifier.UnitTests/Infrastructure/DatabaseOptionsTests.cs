using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.UnitTests.Infrastructure;

/// <summary>Database settings nothing could connect with are refused naming the setting, not with the driver's stack trace.</summary>
public sealed class DatabaseOptionsTests
{
    [Theory]
    [InlineData("postgres", null, "Database:ConnectionString is required when Database:Provider is postgres")]
    [InlineData("postgres", "garbage", "Database:ConnectionString is not a valid postgres connection string")]
    [InlineData("postgres", "Host=db;Password=secret-pw;Bogus=1", "Database:ConnectionString is not a valid postgres connection string")]
    [InlineData("sqlite", "Foo=bar", "Database:ConnectionString is not a valid sqlite connection string")]
    [InlineData("mysql", null, "Database:Provider 'mysql' is not supported")]
    public void Validated_SettingsNothingCouldConnectWith_RefusedNamingTheSetting(string provider, string? connectionString, string expected)
    {
        var options = new DatabaseOptions { Provider = provider, ConnectionString = connectionString };

        var error = Assert.Throws<InvalidOperationException>(() => options.Validated());

        Assert.StartsWith(expected, error.Message);
        Assert.DoesNotContain("secret-pw", error.Message);
    }

    [Fact]
    public void AddClassifierDatabase_PostgresWithoutConnectionString_RefusedAtRegistrationNotAtTheFirstQuery()
    {
        // The first query is in startup's retry loop, which would wait a minute for a setting that will not change.
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Database:Provider"] = "postgres" }).Build();

        var error = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddClassifierDatabase(configuration));

        Assert.Contains("Database:ConnectionString is required", error.Message);
    }

    [Fact]
    public void Validated_NegativeMigrationLockTimeout_RefusedNamingTheSetting()
    {
        var options = new DatabaseOptions { MigrationLockTimeoutSeconds = -1 };

        var error = Assert.Throws<InvalidOperationException>(() => options.Validated());

        Assert.Equal("Database:MigrationLockTimeoutSeconds must be 0 (wait for ever) or more, not -1", error.Message);
    }

    [Theory]
    [InlineData(0, null)]
    [InlineData(900, 900)]
    public void MigrationLockTimeout_ZeroWaitsForEver(int seconds, int? expected)
    {
        var options = new DatabaseOptions { MigrationLockTimeoutSeconds = seconds };

        Assert.Equal(expected is { } s ? TimeSpan.FromSeconds(s) : null, options.MigrationLockTimeout);
        Assert.Equal(900, new DatabaseOptions().MigrationLockTimeoutSeconds);
    }

    [Theory]
    [InlineData("sqlite", null)]
    [InlineData("sqlite", "Data Source=/tmp/x.db;Default Timeout=30")]
    [InlineData("Postgres", "Host=db;Database=wasteclassifier;Username=u;Password=p")]
    public void Validated_UsableSettings_Accepted(string provider, string? connectionString)
    {
        var options = new DatabaseOptions { Provider = provider, ConnectionString = connectionString };

        Assert.Same(options, options.Validated());
    }
}
