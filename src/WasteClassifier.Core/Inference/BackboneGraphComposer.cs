using Onnx;
using static WasteClassifier.Core.Inference.OnnxGraphBuilder;

namespace WasteClassifier.Core.Inference;

/// <summary>
/// Merges a backbone's preprocessing graph, its network and a classifier head into one ONNX graph with a
/// symbolic batch, so a worker makes one runtime call per batch.
/// </summary>
public static class BackboneGraphComposer
{
    public const string ImageInput = "image";
    public const string FeaturesOutput = "features";
    public const string ProbabilitiesOutput = "probabilities";

    private const string Preprocessed = "preprocessed";
    private const string Pooled = "pooled";

    /// <summary>image [batch,3,H,W] (RGB 0–255) → features [batch, FeatureWidth].</summary>
    public static ModelProto ComposeFeatureExtractor(BackboneDefinition backbone, string backbonesRoot)
    {
        var graph = new GraphProto { Name = $"{backbone.Id}-features" };
        AppendBackbone(graph, backbone, backbonesRoot);
        graph.Output.Add(BatchedFloat(FeaturesOutput, backbone.FeatureWidth));
        return Tidy(Model(graph, "wasteclassifier-composer"));
    }

    /// <summary>image [batch,3,H,W] (RGB 0–255) → probabilities [batch, labels], with <paramref name="head"/> fed the features.</summary>
    public static ModelProto ComposeClassifier(BackboneDefinition backbone, string backbonesRoot, ModelProto head)
    {
        var headOpset = head.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(0).Max();
        if (headOpset > Opset) throw new InvalidDataException($"the head uses opset {headOpset}; it must be at most {Opset} to merge with the backbone");

        var headGraph = head.Graph.Clone();
        var headInput = OnnxGraphEditing.FedInputs(headGraph).ToList();
        if (headInput.Count != 1 || headGraph.Output.Count != 1)
            throw new InvalidDataException("a head must have exactly one input (the features) and one output (the scores)");
        OnnxGraphEditing.RenameAll(headGraph, "head/", new Dictionary<string, string>
        {
            [headInput[0].Name] = FeaturesOutput,
            [headGraph.Output[0].Name] = ProbabilitiesOutput,
        });

        var graph = new GraphProto { Name = $"{backbone.Id}-classifier" };
        AppendBackbone(graph, backbone, backbonesRoot);
        OnnxGraphEditing.Append(graph, headGraph);
        graph.Output.Add(headGraph.Output[0]);
        return Tidy(Model(graph, "wasteclassifier-composer"));
    }

    private static void AppendBackbone(GraphProto graph, BackboneDefinition backbone, string backbonesRoot)
    {
        var preprocess = OnnxGraphEditing.Load(backbone.PreprocessPath(backbonesRoot)).Graph;
        var network = OnnxGraphEditing.Load(backbone.NetworkPath(backbonesRoot)).Graph;
        OnnxGraphEditing.MakeBatchSymbolic(preprocess);
        OnnxGraphEditing.MakeBatchSymbolic(network);

        OnnxGraphEditing.RenameAll(preprocess, "preprocess/", new Dictionary<string, string>
        {
            [OnnxGraphEditing.FedInputs(preprocess).Single().Name] = ImageInput,
            [preprocess.Output.Single().Name] = Preprocessed,
        });
        OnnxGraphEditing.RenameAll(network, "backbone/", new Dictionary<string, string>
        {
            [backbone.NetworkInput] = Preprocessed,
            [backbone.PooledOutput] = Pooled,
        });
        var extraMaps = backbone.ExtraPooledMaps.Select(m => "backbone/" + m.Tensor).ToList();

        graph.Input.Add(BatchedFloat(ImageInput, 3, backbone.Input.Height, backbone.Input.Width));
        OnnxGraphEditing.Append(graph, preprocess);
        OnnxGraphEditing.Append(graph, network);
        // The pooled output is [batch,512,1,1]; heads take [batch,512].
        var flattened = extraMaps.Count == 0 ? FeaturesOutput : "pooled-flat";
        graph.Node.Add(Node("Flatten", "flatten-features", [Pooled], [flattened], IntAttribute("axis", 1)));
        if (extraMaps.Count == 0) return;

        var parts = new List<string> { flattened };
        for (var i = 0; i < extraMaps.Count; i++)
        {
            graph.Node.Add(Node("GlobalAveragePool", $"pool-extra{i}", [extraMaps[i]], [$"extra{i}-pooled"]));
            graph.Node.Add(Node("Flatten", $"flatten-extra{i}", [$"extra{i}-pooled"], [$"extra{i}"], IntAttribute("axis", 1)));
            parts.Add($"extra{i}");
        }
        graph.Node.Add(Node("Concat", "concat-features", parts, [FeaturesOutput], IntAttribute("axis", 1)));
    }

    /// <summary>Drops value infos that duplicate each other or the graph's own inputs and outputs.</summary>
    private static ModelProto Tidy(ModelProto model)
    {
        var graph = model.Graph;
        var declared = graph.Input.Concat(graph.Output).Select(v => v.Name).ToHashSet();
        var kept = graph.ValueInfo.Where(v => declared.Add(v.Name)).ToList();
        graph.ValueInfo.Clear();
        graph.ValueInfo.AddRange(kept);
        return model;
    }
}
