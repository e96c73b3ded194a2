using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using WasteClassifier.Core.Evaluation;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.Core.Training;

/// <summary>Writes a trained head as a servable model folder: head.onnx plus card.json.</summary>
public static class TrainedModelWriter
{
    public const string HeadFileName = "head.onnx";

    public static ModelCard Write(string outputDirectory, string version, HeadTrainingRequest request, HeadTrainingResult result)
    {
        Directory.CreateDirectory(outputDirectory);
        File.WriteAllBytes(Path.Combine(outputDirectory, HeadFileName), HeadOnnxExporter.ToOnnx(result.Head).ToByteArray());
        var card = new ModelCard
        {
            Version = version,
            Description = $"{request.Backbone.Id} features → {request.Head.HeadType} head trained on {Path.GetFileName(Path.TrimEndingDirectorySeparator(request.DatasetDirectory))}",
            Labels = request.Labels,
            Input = request.Backbone.Input,
            Backbone = request.Backbone.Id,
            Head = HeadFileName,
            CreatedAt = DateTimeOffset.UtcNow,
            Training = TrainingInfo(request, result),
            Metrics = Metrics(result.Evaluation, result.EvaluationSplit, "head on cached features"),
        };
        SaveCard(outputDirectory, card);
        return card;
    }

    /// <summary>The card options, but leaving readable characters (→, ') unescaped: cards are read by people too.</summary>
    public static JsonSerializerOptions CardWriteOptions { get; } = new(ModelCard.JsonOptions) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void SaveCard(string directory, ModelCard card) =>
        File.WriteAllText(Path.Combine(directory, ModelCard.FileName), JsonSerializer.Serialize(card, CardWriteOptions) + Environment.NewLine);

    /// <summary>A report plus which split it was measured on and how (cached features, or end to end from image files).</summary>
    public static JsonElement Metrics(ClassificationReport report, string split, string method)
    {
        var node = JsonSerializer.SerializeToNode(report, ModelCard.JsonOptions)!.AsObject();
        var result = new JsonObject { ["split"] = split, ["method"] = method };
        foreach (var (key, value) in node) result[key] = value?.DeepClone();
        return JsonSerializer.SerializeToElement(result, ModelCard.JsonOptions);
    }

    private static JsonElement TrainingInfo(HeadTrainingRequest request, HeadTrainingResult result) => JsonSerializer.SerializeToElement(new
    {
        Dataset = Path.GetFileName(Path.TrimEndingDirectorySeparator(request.DatasetDirectory)),
        Split = $"hold-out: first 4 bytes of the image's SHA-256 (big-endian) mod {HoldOutSplit.Buckets} == 0, never trained on",
        ImagesPerLabel = result.TrainingCounts,
        // As a training job records it: the promotion gate tells a job on the same data as this model by it.
        DataFingerprint = TrainingDataFingerprint.Of(result.TrainingImages),
        TrainingRows = result.TrainingRows,
        request.Augmentation,
        Backbone = request.Backbone.Id,
        Hyperparameters = request.Head,
    }, ModelCard.JsonOptions);
}
