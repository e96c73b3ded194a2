using System.Text.Json;
using System.Text.Json.Serialization;

namespace WasteClassifier.LoadTesting.Reporting;

/// <summary>Writes report.json, report.md and report.html into one folder.</summary>
public static class ReportFiles
{
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public static IReadOnlyList<string> Write(LoadReport report, string folder)
    {
        Directory.CreateDirectory(folder);
        var files = new[] { Path.Combine(folder, "report.json"), Path.Combine(folder, "report.md"), Path.Combine(folder, "report.html") };
        File.WriteAllText(files[0], JsonSerializer.Serialize(report, Json) + "\n");
        File.WriteAllText(files[1], MarkdownReport.Render(report));
        File.WriteAllText(files[2], HtmlReport.Render(report));
        return files;
    }
}
