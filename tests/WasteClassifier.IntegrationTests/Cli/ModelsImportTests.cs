using Google.Protobuf;
using Microsoft.Data.Sqlite;
using WasteClassifier.Cli.Commands;
using WasteClassifier.Core.Inference;
using WasteClassifier.Core.Training;
using static WasteClassifier.Core.Inference.OnnxGraphBuilder;

namespace WasteClassifier.IntegrationTests.Cli;

/// <summary><c>wastectl models import</c> against the embedded default's SQLite database and folder store.</summary>
public sealed class ModelsImportTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("wastectl-import-test").FullName;

    [Fact]
    public void Import_ExternalNhwcClassifier_RegisteredAsACandidateThatLoads()
    {
        var (onnx, card) = WriteExternalModel("mobilenet-stub-1", labels: 9);
        Migrate();

        var exit = Run("--onnx", onnx, "--card", card, "--data-directory", _directory);

        Assert.Equal(0, exit);
        using var db = new SqliteConnection($"Data Source={Path.Combine(_directory, "wasteclassifier.db")}");
        db.Open();
        using var command = db.CreateCommand();
        command.CommandText = "SELECT status, origin, artifact_prefix FROM models WHERE version = 'mobilenet-stub-1'";
        using var reader = command.ExecuteReader();
        Assert.True(reader.Read());
        Assert.Equal(("candidate", "imported"), (reader.GetString(0), reader.GetString(1)));
        // A folder of the import's own under the version's: models/mobilenet-stub-1/{id}/.
        var prefix = reader.GetString(2);
        Assert.Matches("^models/mobilenet-stub-1/[0-9a-f]{32}/$", prefix);
        var stored = Path.Combine(_directory, "objects", "waste-images", prefix);
        Assert.True(File.Exists(Path.Combine(stored, "classifier.onnx")));
        using var loaded = ModelLoader.Load(stored, new InferenceOptions { IntraOpThreads = 1 });
        Assert.Equal(9, loaded.Classify(new float[2 * 2 * 3], 1)[0].Length);

        Assert.Equal(2, Run("--onnx", onnx, "--card", card, "--data-directory", _directory)); // already registered
    }

    [Fact]
    public void Import_CardWithWrongLabelCount_RefusedBeforeRegistering()
    {
        var (onnx, card) = WriteExternalModel("mismatch-1", labels: 9, cardLabels: 3);
        Assert.Equal(2, Run("--onnx", onnx, "--card", card, "--data-directory", _directory));
        Assert.False(File.Exists(Path.Combine(_directory, "wasteclassifier.db")));
    }

    [Fact]
    public void Import_NoDatabaseInTheDataDirectory_RefusedNamingTheFileInsteadOfCreatingOne()
    {
        var (onnx, card) = WriteExternalModel("elsewhere-1", labels: 9);
        var dataDirectory = Path.Combine(_directory, "data");

        var error = Assert.Throws<UsageException>(() => Import("--onnx", onnx, "--card", card, "--data-directory", dataDirectory));

        Assert.Contains(Path.Combine(dataDirectory, "wasteclassifier.db"), error.Message);
        Assert.Contains("--data-directory", error.Message);
        Assert.False(Directory.Exists(dataDirectory));
    }

    [Fact]
    public void Import_TrainedHeadWithItsCard_RefusedAsAHeadNamingModelDirectory()
    {
        // What `wastectl train --out DIR` writes: head.onnx (features in) and a card naming backbone and head.
        var (onnx, card) = WriteHead(new ModelCard
        {
            Version = "trained-head-1",
            Labels = WasteLabels.All.ToList(),
            Input = new ModelInputSpec { Width = 224, Height = 224 },
            Backbone = "resnet18-imagenet",
            Head = TrainedModelWriter.HeadFileName,
        });
        Migrate();

        var error = Assert.Throws<UsageException>(() => Import("--onnx", onnx, "--card", card, "--data-directory", _directory));

        Assert.Contains("head", error.Message);
        Assert.Contains($"Model__Directory={Path.GetDirectoryName(card)}", error.Message);
        Assert.DoesNotContain("Invalid rank", error.Message);
    }

    [Fact]
    public void Import_HeadGraphWithAnImageCard_RefusedAsAHead()
    {
        // A card written as for a complete classifier: only the graph's 2-D features input tells it is a head.
        var (onnx, card) = WriteHead(new ModelCard
        {
            Version = "head-as-classifier-1",
            Labels = WasteLabels.All.ToList(),
            Input = new ModelInputSpec { Width = 224, Height = 224 },
            Onnx = TrainedModelWriter.HeadFileName,
        });
        Migrate();

        var error = Assert.Throws<UsageException>(() => Import("--onnx", onnx, "--card", card, "--data-directory", _directory));

        Assert.Contains("head", error.Message);
        Assert.Contains($"Model__Directory={Path.GetDirectoryName(onnx)}", error.Message);
    }

    private void Migrate()
    {
        var command = new MigrateCommand();
        Assert.Equal(0, command.Run(new CommandArguments(["--data-directory", _directory], command.ValueOptions, command.FlagOptions)));
    }

    private static int Import(params string[] args)
    {
        var command = new ModelsImportCommand();
        return command.Run(new CommandArguments(args, command.ValueOptions, command.FlagOptions));
    }

    private static int Run(params string[] args)
    {
        try
        {
            return Import(args);
        }
        catch (Exception e) when (e is UsageException or InvalidDataException)
        {
            return 2; // what the dispatcher answers for these
        }
    }

    /// <summary>A stand-in for an exported MobileNetV2: NHWC 2×2 RGB/255 in, logits out.</summary>
    private (string Onnx, string Card) WriteExternalModel(string version, int labels, int? cardLabels = null)
    {
        var graph = new Onnx.GraphProto { Name = "external" };
        graph.Input.Add(BatchedFloat("pixels", 2, 2, 3));
        graph.Output.Add(BatchedFloat("logits", labels));
        graph.Initializer.Add(FloatTensor("w", Enumerable.Range(0, 12 * labels).Select(i => i % 7 * 0.1f).ToArray(), 12, labels));
        graph.Node.Add(Node("Flatten", "flatten", ["pixels"], ["flat"], IntAttribute("axis", 1)));
        graph.Node.Add(Node("MatMul", "scores", ["flat", "w"], ["logits"]));
        var onnx = Path.Combine(_directory, "classifier.onnx");
        File.WriteAllBytes(onnx, Model(graph, "test").ToByteArray());
        var cardDirectory = Directory.CreateTempSubdirectory("card").FullName;
        TrainedModelWriter.SaveCard(cardDirectory, new ModelCard
        {
            Version = version,
            Labels = WasteLabels.All.Take(cardLabels ?? labels).ToList(),
            Input = new ModelInputSpec { Width = 2, Height = 2, Layout = TensorLayout.Nhwc, Scale = 1 / 255f },
            Onnx = "classifier.onnx",
            OutputIsProbabilities = false,
        });
        return (onnx, Path.Combine(cardDirectory, ModelCard.FileName));
    }

    /// <summary>A tiny trained head (8 features → 9 labels) and the given card in a folder of their own.</summary>
    private (string Onnx, string Card) WriteHead(ModelCard card)
    {
        const int features = 8;
        var labels = card.Labels.Count;
        var head = new HeadModel(features, true, new float[features], Enumerable.Repeat(1f, features).ToArray(),
            [new DenseLayer(features, labels, Enumerable.Range(0, features * labels).Select(i => i % 5 * 0.1f).ToArray(), new float[labels], false)]);
        var directory = Directory.CreateDirectory(Path.Combine(_directory, "head")).FullName;
        var onnx = Path.Combine(directory, TrainedModelWriter.HeadFileName);
        HeadOnnxExporter.Write(head, onnx);
        TrainedModelWriter.SaveCard(directory, card);
        return (onnx, Path.Combine(directory, ModelCard.FileName));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
