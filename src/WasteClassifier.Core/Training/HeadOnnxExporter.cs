using Google.Protobuf;
using Onnx;
using static WasteClassifier.Core.Inference.OnnxGraphBuilder;

namespace WasteClassifier.Core.Training;

/// <summary>
/// Writes a <see cref="HeadModel"/> as ONNX opset 8 (so it merges with the backbone):
/// features [batch,width] → LpNormalization → Sub mean → Div std → (Gemm → Relu)* → Gemm → Softmax → probabilities [batch,labels].
/// </summary>
public static class HeadOnnxExporter
{
    public const string InputName = "features";
    public const string OutputName = "probabilities";

    public static ModelProto ToOnnx(HeadModel head, string name = "head")
    {
        var graph = new GraphProto { Name = name };
        graph.Input.Add(BatchedFloat(InputName, head.FeatureWidth));
        graph.Output.Add(BatchedFloat(OutputName, head.Outputs));

        var current = InputName;
        if (head.L2Normalise)
        {
            graph.Node.Add(Node("LpNormalization", "l2-normalise", [current], ["l2"], IntAttribute("axis", 1), IntAttribute("p", 2)));
            current = "l2";
        }
        graph.Initializer.Add(FloatTensor("mean", head.Mean, 1, head.FeatureWidth));
        graph.Initializer.Add(FloatTensor("std", head.Std, 1, head.FeatureWidth));
        graph.Node.Add(Node("Sub", "centre", [current, "mean"], ["centred"]));
        graph.Node.Add(Node("Div", "scale", ["centred", "std"], ["standardised"]));
        current = "standardised";

        for (var i = 0; i < head.Layers.Count; i++)
        {
            var layer = head.Layers[i];
            graph.Initializer.Add(FloatTensor($"dense{i}.weight", layer.Weights, layer.Outputs, layer.Inputs));
            graph.Initializer.Add(FloatTensor($"dense{i}.bias", layer.Bias, layer.Outputs));
            var output = $"dense{i}";
            graph.Node.Add(Node("Gemm", $"dense{i}", [current, $"dense{i}.weight", $"dense{i}.bias"], [output], IntAttribute("transB", 1)));
            current = output;
            if (!layer.Relu) continue;
            graph.Node.Add(Node("Relu", $"relu{i}", [current], [$"relu{i}"]));
            current = $"relu{i}";
        }
        graph.Node.Add(Node("Softmax", "softmax", [current], [OutputName], IntAttribute("axis", 1)));
        return Model(graph, "wasteclassifier-head-trainer");
    }

    public static void Write(HeadModel head, string path) => File.WriteAllBytes(path, ToOnnx(head).ToByteArray());
}
