using Google.Protobuf;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Core.Evaluation;
using WasteClassifier.Core.Inference;
using WasteClassifier.Core.Training;
using WasteClassifier.UnitTests.Support;
using static WasteClassifier.Core.Inference.OnnxGraphBuilder;

namespace WasteClassifier.UnitTests.Evaluation;

/// <summary>Scoring image files from a manifest through a real ONNX model.</summary>
public sealed class ImageSetEvaluatorTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("evaluator-test").FullName;

    [Fact]
    public void Evaluate_ManifestWithAClassTheModelLacks_ScoresTheRestAndCountsTheOthers()
    {
        using var classifier = RedOrBlueClassifier();
        var entries = new List<ManifestEntry>
        {
            Image("red-1.png", "glass", new Rgb24(250, 0, 0)),
            Image("red-2.png", "glass", new Rgb24(200, 10, 10)),
            Image("blue-1.png", "metal", new Rgb24(0, 0, 250)),
            Image("green-1.png", "vegetation", new Rgb24(0, 250, 0)),
            Image("green-2.png", "vegetation", new Rgb24(10, 200, 10)),
        };
        var log = new List<string>();

        var report = ImageSetEvaluator.Evaluate(classifier, _directory, entries, log.Add);

        Assert.Equal(3, report.Count);
        Assert.Equal(2, report.NotScored);
        Assert.Equal(1.0, report.Accuracy);
        Assert.Equal(["glass", "metal"], report.Labels);
        Assert.Contains("\"not_scored\": 2", report.ToJson());
        Assert.Contains(log, line => line.StartsWith("2 image(s) carry labels", StringComparison.Ordinal));
    }

    [Fact]
    public void Evaluate_EveryImageScored_ReportHasNoNotScoredField()
    {
        using var classifier = RedOrBlueClassifier();

        var report = ImageSetEvaluator.Evaluate(classifier, _directory, [Image("red.png", "glass", new Rgb24(250, 0, 0))], _ => { });

        Assert.Equal((1, 0), (report.Count, report.NotScored));
        Assert.DoesNotContain("not_scored", report.ToJson());
    }

    private ManifestEntry Image(string file, string label, Rgb24 colour)
    {
        File.WriteAllBytes(Path.Combine(_directory, file), TestImages.SolidPng(2, 2, colour));
        return new ManifestEntry(file, label);
    }

    /// <summary>A 2×2 NHWC model with labels glass and metal: the red channel's sum scores glass, the blue one's metal.</summary>
    private OnnxImageClassifier RedOrBlueClassifier()
    {
        var graph = new Onnx.GraphProto { Name = "red-or-blue" };
        graph.Input.Add(BatchedFloat("pixels", 2, 2, 3));
        graph.Output.Add(BatchedFloat("logits", 2));
        var weights = Enumerable.Range(0, 12).SelectMany(i => new[] { i % 3 == 0 ? 1f : 0f, i % 3 == 2 ? 1f : 0f }).ToArray();
        graph.Initializer.Add(FloatTensor("w", weights, 12, 2));
        graph.Node.Add(Node("Flatten", "flatten", ["pixels"], ["flat"], IntAttribute("axis", 1)));
        graph.Node.Add(Node("MatMul", "scores", ["flat", "w"], ["logits"]));
        var model = Directory.CreateDirectory(Path.Combine(_directory, "model")).FullName;
        File.WriteAllBytes(Path.Combine(model, "classifier.onnx"), Model(graph, "test").ToByteArray());
        TrainedModelWriter.SaveCard(model, new ModelCard
        {
            Version = "red-or-blue-1",
            Labels = ["glass", "metal"],
            Input = new ModelInputSpec { Width = 2, Height = 2, Layout = TensorLayout.Nhwc, Scale = 1 / 255f },
            Onnx = "classifier.onnx",
            OutputIsProbabilities = false,
        });
        return ModelLoader.Load(model, new InferenceOptions { IntraOpThreads = 1 });
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
