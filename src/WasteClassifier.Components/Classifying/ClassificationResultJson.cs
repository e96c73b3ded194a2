using System.Text.Json;

namespace WasteClassifier.Components.Classifying;

/// <summary>How a row's probabilities are stored: a JSON object {label: probability}, in the model's label order.</summary>
public static class ClassificationResultJson
{
    public static string Serialize(IReadOnlyList<string> labels, IReadOnlyList<float> probabilities)
    {
        var map = new Dictionary<string, double>(labels.Count);
        for (var i = 0; i < labels.Count; i++) map[labels[i]] = Math.Round(probabilities[i], 6);
        return JsonSerializer.Serialize(map);
    }

    public static Dictionary<string, double> Deserialize(string? json) =>
        json is null ? [] : JsonSerializer.Deserialize<Dictionary<string, double>>(json) ?? [];
}
