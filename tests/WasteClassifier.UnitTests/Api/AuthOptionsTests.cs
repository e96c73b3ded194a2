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
}
