using System.Text.Json;
using Google.Protobuf;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Persistence;
using static WasteClassifier.Core.Inference.OnnxGraphBuilder;

namespace WasteClassifier.UnitTests.Support;

/// <summary>Registry versions of a tiny NHWC classifier (2×2 RGB in, two scores out) that ONNX Runtime loads in milliseconds.</summary>
internal static class TinyModels
{
    /// <summary>
    /// Registers <paramref name="version"/> active, the others retired; with its file in <paramref name="store"/> unless
    /// <paramref name="withFile"/> is false (a version whose artifact is missing, which fails to load).
    /// </summary>
    public static async Task PromoteAsync(ClassifierDbContext db, MemoryObjectStore store, string version, bool withFile = true)
    {
        if (withFile) await PutFileAsync(store, version, Onnx(version));
        foreach (var model in db.Models) model.Status = ModelStatus.Retired;
        db.Models.Add(new ModelRecord
        {
            Version = version,
            Status = ModelStatus.Active,
            Origin = "test",
            ArtifactPrefix = ModelRegistry.PrefixFor(version),
            CardJson = JsonSerializer.Serialize(new ModelCard
            {
                Version = version,
                Labels = ["a", "b"],
                Onnx = "classifier.onnx",
                Input = new ModelInputSpec { Width = 2, Height = 2, Layout = TensorLayout.Nhwc, Scale = 1 / 255f },
            }, ModelCard.JsonOptions),
            CreatedAt = DateTime.UtcNow,
            PromotedAt = DateTime.UtcNow,
        });
        await db.SaveChangesAsync();
    }

    /// <summary>The ONNX file of <paramref name="version"/>.</summary>
    public static byte[] Onnx(string version)
    {
        var graph = new Onnx.GraphProto { Name = version };
        graph.Input.Add(BatchedFloat("pixels", 2, 2, 3));
        graph.Output.Add(BatchedFloat("logits", 2));
        graph.Initializer.Add(FloatTensor("w", Enumerable.Range(0, 24).Select(i => i % 3 * 0.1f).ToArray(), 12, 2));
        graph.Node.Add(Node("Flatten", "flatten", ["pixels"], ["flat"], IntAttribute("axis", 1)));
        graph.Node.Add(Node("MatMul", "scores", ["flat", "w"], ["logits"]));
        return Model(graph, "test").ToByteArray();
    }

    /// <summary>Uploads <paramref name="content"/> as <paramref name="version"/>'s ONNX file (a corrupt one, or its fix).</summary>
    public static Task PutFileAsync(MemoryObjectStore store, string version, byte[] content) =>
        store.PutAsync(ModelRegistry.PrefixFor(version) + "classifier.onnx", content, "application/octet-stream", CancellationToken.None);
}
