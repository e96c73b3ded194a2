using Google.Protobuf;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;
using WasteClassifier.Core.Training;
using WasteClassifier.UnitTests.Support;
using static WasteClassifier.Core.Inference.OnnxGraphBuilder;

namespace WasteClassifier.UnitTests.Inference;

public sealed class ModelLoaderTests : IClassFixture<DefaultModelFixture>
{
    private readonly OnnxImageClassifier classifier;

    public ModelLoaderTests(DefaultModelFixture fixture) => classifier = fixture.Classifier;

    [Fact]
    public void Load_DefaultModel_OutputsNineProbabilitiesSummingToOne()
    {
        var blank = new float[3 * 224 * 224];

        var row = Assert.Single(classifier.Classify(blank, 1));

        Assert.Equal(9, classifier.Card.Labels.Count);
        Assert.Equal(9, row.Length);
        Assert.Equal(1f, row.Sum(), 1e-4f);
    }

    [Theory]
    [MemberData(nameof(KnownImages))]
    public void Classify_RealDatasetImage_PredictsItsLabel(string path, string label)
    {
        var tensor = new float[3 * 224 * 224];
        var check = ImageTensorWriter.Write(File.ReadAllBytes(Path.Combine(TestPaths.Dataset, path)), classifier.Card.Input, tensor, ImageLimits.Default);
        Assert.True(check.Ok, check.Message);

        var row = classifier.Classify(tensor, 1)[0];

        Assert.Equal(label, classifier.Card.Labels[Core.Evaluation.ClassificationMetrics.ArgMax(row)]);
    }

    // Hold-out images (never trained on), one per class with data.
    public static TheoryData<string, string> KnownImages => new()
    {
        { "cardboard/trashnet-082f4c295d3f.jpg", "cardboard" },
        { "food-organics/wastemix-0768af7ea2b5.jpg", "food organics" },
        { "glass/trashnet-03e8819898ab.jpg", "glass" },
        { "metal/trashnet-0226d4f7a4ee.jpg", "metal" },
        { "miscellaneous-trash/trashnet-2bed425a01de.jpg", "miscellaneous trash" },
        { "paper/trashnet-01a251a85e00.jpg", "paper" },
        { "plastic/trashnet-0983395728b1.jpg", "plastic" },
        { "textile-trash/wastemix-09c438329694.jpg", "textile trash" },
    };

    [Fact]
    public async Task Classify_TwoLanesRunningBatchesInChunks_GiveTheSequentialResults()
    {
        // Batches of 4 through Runs of at most 3 images: each batch is split 3 + 1.
        using var lanes = ModelLoader.Load(TestPaths.DefaultModel, new InferenceOptions { IntraOpThreads = 1, ConcurrentRuns = 2, MaxImagesPerRun = 3 });
        var length = ImageTensorWriter.TensorLength(lanes.Card.Input);
        var batches = KnownImages.Select(row => (string)row[0]).Chunk(4).Select(paths =>
        {
            var tensor = new float[paths.Length * length];
            for (var i = 0; i < paths.Length; i++)
                ImageTensorWriter.Write(File.ReadAllBytes(Path.Combine(TestPaths.Dataset, paths[i])), lanes.Card.Input, tensor.AsSpan(i * length, length), ImageLimits.Default);
            return (Tensor: tensor, Count: paths.Length);
        }).ToArray();
        var expected = batches.Select(b => classifier.Classify(b.Tensor, b.Count)).ToArray();

        // Both batches in the model at once, several times over, on the two lanes of one session.
        var results = await Task.WhenAll(batches.Select(b => Task.Run(() => Enumerable.Range(0, 3).Select(_ => lanes.Classify(b.Tensor, b.Count)).ToArray())));

        for (var b = 0; b < batches.Length; b++)
            foreach (var run in results[b])
                for (var i = 0; i < batches[b].Count; i++)
                    Assert.Equal(expected[b][i], run[i], (x, y) => Math.Abs(x - y) < 1e-4f);
    }

    [Fact]
    public void Load_CardListingEightLabels_ThrowsNamingBothCounts()
    {
        var directory = Directory.CreateTempSubdirectory("loader-test").FullName;
        try
        {
            File.Copy(Path.Combine(TestPaths.DefaultModel, "head.onnx"), Path.Combine(directory, "head.onnx"));
            var card = classifier.Card with { Labels = classifier.Card.Labels.Take(8).ToList() };
            TrainedModelWriter.SaveCard(directory, card);

            var error = Assert.Throws<InvalidDataException>(() => ModelLoader.Load(directory, new InferenceOptions { IntraOpThreads = 1 }));

            Assert.Contains("9 scores", error.Message);
            Assert.Contains("8 labels", error.Message);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Load_ExternalNhwcModelWithLogits_AppliesSoftmax()
    {
        var directory = Directory.CreateTempSubdirectory("external-test").FullName;
        try
        {
            // A stand-in for e.g. MobileNetV2: NHWC 2×2 RGB/255 in, 3 logits out.
            var graph = new Onnx.GraphProto { Name = "external" };
            graph.Input.Add(BatchedFloat("pixels", 2, 2, 3));
            graph.Output.Add(BatchedFloat("logits", 3));
            graph.Initializer.Add(FloatTensor("w", Enumerable.Range(0, 36).Select(i => i % 5 * 0.1f).ToArray(), 12, 3));
            graph.Node.Add(Node("Flatten", "flatten", ["pixels"], ["flat"], IntAttribute("axis", 1)));
            graph.Node.Add(Node("MatMul", "scores", ["flat", "w"], ["logits"]));
            File.WriteAllBytes(Path.Combine(directory, "classifier.onnx"), Model(graph, "test").ToByteArray());
            TrainedModelWriter.SaveCard(directory, new ModelCard
            {
                Version = "external-test",
                Labels = ["a", "b", "c"],
                Input = new ModelInputSpec { Width = 2, Height = 2, Layout = TensorLayout.Nhwc, Scale = 1 / 255f },
                Onnx = "classifier.onnx",
                OutputIsProbabilities = false,
            });
            using var external = ModelLoader.Load(directory, new InferenceOptions { IntraOpThreads = 1 });

            var rows = external.Classify(Enumerable.Repeat(0.5f, 24).ToArray(), 2);

            Assert.Equal(2, rows.Length);
            Assert.All(rows, r => Assert.Equal(1f, r.Sum(), 1e-5f));
            Assert.All(rows, r => Assert.True(r.All(p => p > 0 && p < 1)));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

/// <summary>Loads the default model once for all tests that use it (composition takes about a second).</summary>
public sealed class DefaultModelFixture : IDisposable
{
    public OnnxImageClassifier Classifier { get; } = ModelLoader.Load(TestPaths.DefaultModel, new InferenceOptions { IntraOpThreads = 2 });

    public void Dispose() => Classifier.Dispose();
}
