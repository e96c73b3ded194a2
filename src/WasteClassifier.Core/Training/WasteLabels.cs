namespace WasteClassifier.Core.Training;

/// <summary>The product's classes, in output order; a new model lists them in its card.</summary>
public static class WasteLabels
{
    public static IReadOnlyList<string> All { get; } =
    [
        "cardboard", "food organics", "glass", "metal", "miscellaneous trash",
        "paper", "plastic", "textile trash", "vegetation",
    ];
}
