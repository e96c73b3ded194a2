using System.Text.Json.Nodes;
using Microsoft.Extensions.Configuration;
using WasteClassifier.Api.Security;
using WasteClassifier.Cli.Commands;
using WasteClassifier.Infrastructure.Security;

namespace WasteClassifier.IntegrationTests.Cli;

/// <summary><c>wastectl keys new</c>: what it prints configures the API as it says, and what the API would refuse it refuses first.</summary>
public sealed class KeysCommandTests
{
    [Fact]
    public void Describe_KeyWithSources_ItsEnvironmentBindsTheKeyInTheApi()
    {
        var key = ApiKeys.Generate();

        var printed = JsonNode.Parse(KeysNewCommand.Describe(key, "line-3", "client", ["line-3", "hall-b/*"]))!;

        Assert.Equal(["line-3", "hall-b/*"], printed["sources"]!.AsArray().Select(s => s!.GetValue<string>()));
        var environment = printed["environment"]!.AsArray().Select(e => e!.GetValue<string>()).ToList();
        Assert.Contains("Auth__Keys__N__Sources__0=line-3", environment);
        Assert.Contains("Auth__Keys__N__Sources__1=hall-b/*", environment);
        // As an operator sets them (N = 0): the API starts, with the key bound to both.
        var bound = Assert.Single(AuthOptions.Bind(Configuration(environment)).Validated());
        Assert.Equal(("line-3", "client"), (bound.Name, bound.Role));
        Assert.Equal(["line-3", "hall-b/*"], bound.Sources);
        Assert.Equal(ApiKeys.ParseHash(ApiKeys.Hash(key)), bound.Hash);
    }

    [Fact]
    public void Describe_KeyWithoutSources_NoSourcesAndKeylessCallsLeftAsConfigured()
    {
        var printed = JsonNode.Parse(KeysNewCommand.Describe(ApiKeys.Generate(), "admin", "admin", []))!;

        Assert.Empty(printed["sources"]!.AsArray());
        var environment = printed["environment"]!.AsArray().Select(e => e!.GetValue<string>()).ToList();
        Assert.Equal(3, environment.Count);
        Assert.Empty(Assert.Single(AuthOptions.Bind(Configuration(environment)).Validated()).Sources);
    }

    [Theory]
    [InlineData("line 3")]
    [InlineData("*")]
    [InlineData("-line-3")]
    [InlineData("hall b/*")]
    public void Run_SourceTheApiWouldRefuse_UsageErrorAndNoKey(string source)
    {
        var command = new KeysNewCommand();
        var arguments = new CommandArguments(["--name", "line-3", "--source", "line-4", "--source", source], command.ValueOptions, command.FlagOptions);

        var error = Assert.Throws<UsageException>(() => command.Run(arguments));

        Assert.Equal($"--source must be a source name (letters, digits and . _ : / -) or a prefix ending in * (got '{source}')", error.Message);
        // The API refuses it at start too.
        var options = new AuthOptions { RequireKeyForClassification = true, Keys = [new() { Hash = ApiKeys.Hash(ApiKeys.Generate()), Sources = [source] }] };
        Assert.Throws<InvalidOperationException>(() => options.Validated());
    }

    private static IConfiguration Configuration(IEnumerable<string> environment) =>
        new ConfigurationBuilder().AddInMemoryCollection(environment.Select(e => e.Split('=', 2))
            .Select(p => KeyValuePair.Create(p[0].Replace("__N__", "__0__").Replace("__", ":"), (string?)p[1]))).Build();
}
