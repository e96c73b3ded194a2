using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.LoadTesting.Targets;

namespace WasteClassifier.UnitTests.LoadTesting;

/// <summary>The cleanup's PostgreSQL connects for a few seconds at most, whatever the connection string says.</summary>
public sealed class DeploymentServicesTests
{
    [Theory]
    [InlineData("", 3)]
    [InlineData(";Timeout=0", 3)]
    [InlineData(";Timeout=60", 3)]
    [InlineData(";Timeout=1", 1)]
    public async Task BuildForCleanup_ConnectTimeout_AtMostThreeSeconds(string timeout, int expected)
    {
        // Timeout=0 is Npgsql's "wait for ever": the cleanup of a run against a PostgreSQL that never answers never ended.
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Database:Provider"] = "postgres",
            ["Database:ConnectionString"] = $"Host=127.0.0.1;Username=loadtest;Password=loadtest;Database=loadtest{timeout}",
            ["DataDirectory"] = Path.GetTempPath(),
        }).Build();

        await using var services = DeploymentServices.BuildForCleanup(configuration);
        using var scope = services.CreateScope();
        var connection = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Database.GetConnectionString();

        Assert.Equal(expected, new NpgsqlConnectionStringBuilder(connection).Timeout);
    }
}
