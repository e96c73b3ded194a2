using System.Text.Json;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.Core.Evaluation;

public sealed record ClassMetrics(double Precision, double Recall, double F1, int Support);

/// <summary>
/// How a model did on a labelled set. <see cref="MacroF1"/> averages F1 over labels with support in the set
/// (a label with no examples there says nothing about the model). Confusion rows are true labels, columns predictions.
/// </summary>
public sealed record ClassificationReport(
    int Count,
    double Accuracy,
    double MacroF1,
    IReadOnlyDictionary<string, ClassMetrics> PerClass,
    int[][] ConfusionMatrix,
    IReadOnlyList<string> Labels)
{
    /// <summary>snake_case, as model cards use.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public JsonElement ToJsonElement() => JsonSerializer.SerializeToElement(this, JsonOptions);

    // Label names stay readable in the output.
    private static readonly JsonSerializerOptions JsonOptions = new(ModelCard.JsonOptions) { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
