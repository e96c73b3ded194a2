using System.Text.Json;
using System.Text.Json.Serialization;
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
    /// <summary>
    /// Images given but left out of <see cref="Count"/>: labelled with a class the model does not have, or not a usable
    /// image. Written only when some were.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int NotScored { get; init; }

    /// <summary>
    /// The report on only the images whose true label is in <paramref name="trueLabels"/> (its confusion rows for other
    /// labels dropped; predictions of any label still count): two models with different labels are compared on the
    /// images both could be scored on. The images left out are added to <see cref="NotScored"/>.
    /// </summary>
    public ClassificationReport OnlyTrueLabels(IReadOnlyCollection<string> trueLabels)
    {
        var confusion = Labels.Select((label, row) => trueLabels.Contains(label) ? (int[])ConfusionMatrix[row].Clone() : new int[Labels.Count]).ToArray();
        var kept = ClassificationMetrics.FromConfusion(Labels, confusion);
        return kept with { NotScored = NotScored + Count - kept.Count };
    }

    /// <summary>snake_case, as model cards use.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public JsonElement ToJsonElement() => JsonSerializer.SerializeToElement(this, JsonOptions);

    // Label names stay readable in the output.
    private static readonly JsonSerializerOptions JsonOptions = new(ModelCard.JsonOptions) { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
