using Onnx;

namespace WasteClassifier.Core.Inference;

/// <summary>Rewrites applied to existing graphs before they are merged into one.</summary>
public static class OnnxGraphEditing
{
    public static ModelProto Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX file not found: {path}", path);
        return ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
    }

    /// <summary>
    /// The shipped graphs fix the batch at 1; they compute the same per image with any batch, so dim 0 of
    /// every declared value becomes the symbolic batch and one Run can take many images.
    /// </summary>
    public static void MakeBatchSymbolic(GraphProto graph)
    {
        foreach (var value in graph.Input.Concat(graph.Output).Concat(graph.ValueInfo))
        {
            var dims = value.Type?.TensorType?.Shape?.Dim;
            if (dims is null || dims.Count == 0) continue;
            dims[0] = new TensorShapeProto.Types.Dimension { DimParam = OnnxGraphBuilder.BatchDimension };
        }
    }

    /// <summary>
    /// Prefixes every tensor and node name so graphs can be merged without collisions; names in
    /// <paramref name="renames"/> are mapped to the given name instead (how graphs are wired to each other).
    /// </summary>
    public static void RenameAll(GraphProto graph, string prefix, IReadOnlyDictionary<string, string> renames)
    {
        string Map(string name) => name.Length == 0 ? name : renames.TryGetValue(name, out var renamed) ? renamed : prefix + name;

        for (var n = 0; n < graph.Node.Count; n++)
        {
            var node = graph.Node[n];
            // Node names must be unique in the merged graph, and some exporters leave them empty.
            node.Name = prefix + (node.Name.Length > 0 ? node.Name : $"{node.OpType}_{n}");
            for (var i = 0; i < node.Input.Count; i++) node.Input[i] = Map(node.Input[i]);
            for (var i = 0; i < node.Output.Count; i++) node.Output[i] = Map(node.Output[i]);
        }
        foreach (var tensor in graph.Initializer) tensor.Name = Map(tensor.Name);
        foreach (var value in graph.Input.Concat(graph.Output).Concat(graph.ValueInfo)) value.Name = Map(value.Name);
    }

    /// <summary>Appends <paramref name="part"/>'s nodes, initializers and value infos to <paramref name="target"/>.</summary>
    public static void Append(GraphProto target, GraphProto part)
    {
        target.Node.AddRange(part.Node);
        target.Initializer.AddRange(part.Initializer);
        target.ValueInfo.AddRange(part.ValueInfo);
    }

    /// <summary>Inputs that are not initializers: what a caller must feed.</summary>
    public static IEnumerable<ValueInfoProto> FedInputs(GraphProto graph)
    {
        var initializers = graph.Initializer.Select(t => t.Name).ToHashSet();
        return graph.Input.Where(i => !initializers.Contains(i.Name));
    }
}
