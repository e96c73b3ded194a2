using Google.Protobuf;
using WasteClassifier.Core.Inference;
using WasteClassifier.Core.Training;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Inference;

public class BackboneGraphComposerTests
{
    [Fact]
    public void ComposeClassifier_BatchOfThree_EqualsThreeSingleRuns()
    {
        var directory = Directory.CreateTempSubdirectory("composer-test").FullName;
        try
        {
            var backbone = BackboneDefinition.ResNet18MultiScale;
            var head = TinyHeads.Random(featureWidth: backbone.FeatureWidth, hidden: 16, outputs: 9);
            File.WriteAllBytes(Path.Combine(directory, "head.onnx"), HeadOnnxExporter.ToOnnx(head).ToByteArray());
            TrainedModelWriter.SaveCard(directory, CardFor(backbone, "head.onnx"));
            using var classifier = ModelLoader.Load(directory, new InferenceOptions { IntraOpThreads = 2 });

            const int count = 3;
            var length = 3 * 224 * 224;
            var random = new Random(5);
            var batch = Enumerable.Range(0, count * length).Select(_ => random.NextSingle() * 255).ToArray();

            var together = classifier.Classify(batch, count);
            for (var i = 0; i < count; i++)
            {
                var alone = classifier.Classify(batch.AsMemory(i * length, length), 1)[0];
                for (var c = 0; c < 9; c++) Assert.Equal(alone[c], together[i][c], 1e-4f);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void ComposeFeatureExtractor_ResNet18_HasSymbolicBatchAndFeatureOutput()
    {
        var model = BackboneGraphComposer.ComposeFeatureExtractor(BackboneDefinition.ResNet18, InferenceOptions.DefaultBackbonesRoot);

        var input = Assert.Single(model.Graph.Input);
        Assert.Equal(BackboneGraphComposer.ImageInput, input.Name);
        Assert.Equal(OnnxGraphBuilder.BatchDimension, input.Type.TensorType.Shape.Dim[0].DimParam);
        Assert.Equal(BackboneGraphComposer.FeaturesOutput, Assert.Single(model.Graph.Output).Name);
        Assert.Equal(model.Graph.Node.Count, model.Graph.Node.Select(n => n.Name).Distinct().Count());
    }

    public static ModelCard CardFor(BackboneDefinition backbone, string head, int labels = 9) => new()
    {
        Version = "test",
        Labels = WasteLabels.All.Take(labels).ToList(),
        Input = backbone.Input,
        Backbone = backbone.Id,
        Head = head,
    };
}
