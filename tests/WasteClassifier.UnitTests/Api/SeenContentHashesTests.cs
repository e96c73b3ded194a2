using System.Security.Cryptography;
using System.Text;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.UnitTests.Api;

public sealed class SeenContentHashesTests
{
    [Fact]
    public void Contains_OnlyHashesAdded()
    {
        var seen = new SeenContentHashes();
        seen.Add(Hash("a"));

        Assert.True(seen.Contains(Hash("a")));
        Assert.False(seen.Contains(Hash("b")));
    }

    [Fact]
    public void Add_BeyondCapacity_KeepsTheRecentAndForgetsTheOldest()
    {
        var seen = new SeenContentHashes(capacity: 3);
        foreach (var n in Enumerable.Range(0, 7)) seen.Add(Hash($"{n}"));

        // Generations of 3: {0,1,2} was dropped when {3,4,5} filled up; {3,4,5} is the previous one, {6} the current.
        Assert.All(Enumerable.Range(0, 3), n => Assert.False(seen.Contains(Hash($"{n}"))));
        Assert.All(Enumerable.Range(3, 4), n => Assert.True(seen.Contains(Hash($"{n}"))));
    }

    [Fact]
    public void Add_AHashFromThePreviousGeneration_IsNotCountedTwice()
    {
        var seen = new SeenContentHashes(capacity: 2);
        seen.Add(Hash("a"));
        seen.Add(Hash("b"));   // full: {a, b} becomes the previous generation
        seen.Add(Hash("a"));   // already known: the current generation stays empty
        seen.Add(Hash("c"));

        Assert.True(seen.Contains(Hash("a")));
        Assert.True(seen.Contains(Hash("b")));
        Assert.True(seen.Contains(Hash("c")));
    }

    private static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}
