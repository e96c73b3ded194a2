namespace WasteClassifier.Core.Inference;

/// <summary>A shipped feature extractor: a preprocessing graph feeding a network whose pooled output is the feature vector.</summary>
public sealed record BackboneDefinition(
    string Id,
    string Folder,
    string PreprocessFile,
    string NetworkFile,
    string NetworkInput,
    string PooledOutput,
    int FeatureWidth,
    ModelInputSpec Input)
{
    /// <summary>Earlier feature maps whose global average is appended to the pooled output (mid-level texture cues).</summary>
    public IReadOnlyList<(string Tensor, int Channels)> ExtraPooledMaps { get; init; } = [];

    /// <summary>
    /// ImageNet ResNet18 (CNTK export, opset 8). Its preprocessing graph takes RGB 0–255 NCHW, swaps to BGR and
    /// subtracts a mean image, so the tensor writer only resizes.
    /// </summary>
    public static BackboneDefinition ResNet18 { get; } = new(
        Id: "resnet18-imagenet",
        Folder: "resnet18",
        PreprocessFile: "ResNetPreprocess.onnx",
        NetworkFile: "ResNet18.onnx",
        NetworkInput: "Input247",
        PooledOutput: "Pooling395_Output_0",
        FeatureWidth: 512,
        Input: new ModelInputSpec { Width = 224, Height = 224, Layout = TensorLayout.Nchw, ChannelOrder = ChannelOrder.Rgb });

    /// <summary>
    /// ResNet18 features at three scales: the last stage pooled (512), then the global averages of the third
    /// (256 × 14×14) and second (128 × 28×28) stages. Mid-level texture cues tell glass, plastic and metal apart
    /// better than the last stage alone (see models/README.md). The id keys the feature cache; change it if the maps change.
    /// </summary>
    public static BackboneDefinition ResNet18MultiScale { get; } = ResNet18 with
    {
        Id = "resnet18-imagenet-multiscale",
        FeatureWidth = 896,
        ExtraPooledMaps = [("ReLU347_Output_0", 256), ("ReLU315_Output_0", 128)],
    };

    public static IReadOnlyList<BackboneDefinition> All { get; } = [ResNet18, ResNet18MultiScale];

    public static BackboneDefinition Find(string id) =>
        All.FirstOrDefault(b => b.Id == id)
        ?? throw new InvalidDataException($"unknown backbone '{id}'; known: {string.Join(", ", All.Select(b => b.Id))}");

    public string PreprocessPath(string backbonesRoot) => Path.Combine(backbonesRoot, Folder, PreprocessFile);

    public string NetworkPath(string backbonesRoot) => Path.Combine(backbonesRoot, Folder, NetworkFile);
}
