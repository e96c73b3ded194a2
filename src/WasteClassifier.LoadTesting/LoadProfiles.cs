namespace WasteClassifier.LoadTesting;

/// <summary>Named user counts: the original Locust runs (10/50/100 users) and twice the heaviest of them.</summary>
public static class LoadProfiles
{
    public static readonly IReadOnlyDictionary<string, int> Users = new Dictionary<string, int>
    {
        ["light"] = 10,
        ["medium"] = 50,
        ["heavy"] = 100,
        ["flood"] = 200,
    };
}
