using Microsoft.Extensions.Configuration;
using WasteClassifier.Api.Security;

namespace WasteClassifier.UnitTests.Api;

public sealed class AuthOptionsTests
{
    private const string HashA = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    private const string HashB = "sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9";

    [Fact]
    public void Validated_UnnamedKeyAfterAnEarlierEntryIsRemoved_KeepsItsName()
    {
        AuthOptions.ApiKeyEntry Unnamed(string hash) => new() { Hash = hash };
        var before = new AuthOptions { Keys = [Unnamed(HashA), Unnamed(HashB)] }.Validated();
        var after = new AuthOptions { Keys = [Unnamed(HashB)] }.Validated();

        // The name is the key's rate-limit bucket and the scope of its Idempotency-Keys: named by position, B became key-0,
        // A's name, and its retries replayed A's submissions.
        Assert.Equal("key-fcde2b2edba5", before[1].Name);
        Assert.Equal(before[1].Name, Assert.Single(after).Name);
        Assert.Equal("key-2c26b46b68ff", before[0].Name);
    }

    [Fact]
    public void Validated_NamedKey_KeepsItsName() =>
        Assert.Equal("line-3", Assert.Single(new AuthOptions { Keys = [new() { Name = " line-3 ", Hash = HashA }] }.Validated()).Name);

    [Fact]
    public void Validated_KeyBoundToSourcesWhileKeylessCallsAreOpen_Refused()
    {
        // Without a key a caller has no binding to be held to: the line-3 camera would leave X-Api-Key off and submit as line-1.
        var keys = new List<AuthOptions.ApiKeyEntry> { new() { Hash = HashA }, new() { Hash = HashB, Sources = ["line-3"] } };
        var e = Assert.Throws<InvalidOperationException>(() => new AuthOptions { Keys = keys }.Validated());
        Assert.Contains("Auth:Keys:1:Sources", e.Message);
        Assert.Contains("Auth:RequireKeyForClassification", e.Message);

        Assert.Equal(["line-3"], new AuthOptions { Keys = keys, RequireKeyForClassification = true }.Validated()[1].Sources);
        Assert.Single(new AuthOptions { Keys = [new() { Hash = HashA }] }.Validated()); // unbound keys need nothing more
    }

    [Fact]
    public void Bind_SourcesGivenAsAPlainValue_RefusedPointingToTheIndexedForm()
    {
        // Auth__Keys__0__Sources=line-3, and JSON "Sources": "line-3": the binder drops a plain value for a list, so the key
        // stayed unbound, free to submit as any source.
        var variables = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Auth:RequireKeyForClassification"] = "true",
            ["Auth:Keys:0:Hash"] = HashA,
            ["Auth:Keys:0:Sources"] = "line-3",
        }).Build();
        var json = new ConfigurationBuilder().AddJsonStream(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(
            $$$"""{"Auth": {"RequireKeyForClassification": true, "Keys": [{"Hash": "{{{HashA}}}", "Sources": "line-3"}]}}"""))).Build();
        foreach (var configuration in new[] { variables, json })
        {
            var e = Assert.Throws<InvalidOperationException>(() => AuthOptions.Bind(configuration));
            Assert.Contains("Auth__Keys__0__Sources__0=line-3", e.Message);
        }
    }

    [Fact]
    public void Bind_SourcesAsAList_Bound()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Auth:RequireKeyForClassification"] = "true",
            ["Auth:Keys:0:Hash"] = HashA,
            ["Auth:Keys:0:Sources:0"] = "line-3",
        }).Build();
        Assert.Equal(["line-3"], Assert.Single(AuthOptions.Bind(configuration).Validated()).Sources);
    }
}
