using System.Text.Json;
using System.Text.Json.Serialization;

namespace WasteClassifier.Core.Inference;

/// <summary>
/// Everything a worker needs to serve a model, read from <c>card.json</c> beside the model's files:
/// labels in output order and the input the graph expects. Nothing about a model is hard-coded in code.
/// </summary>
public sealed record ModelCard
{
    public const string FileName = "card.json";

    public required string Version { get; init; }
    public string? Description { get; init; }
    public required IReadOnlyList<string> Labels { get; init; }
    public required ModelInputSpec Input { get; init; }

    /// <summary>A complete ONNX image classifier in one file (e.g. an exported MobileNetV2). Exclusive with <see cref="Backbone"/>.</summary>
    public string? Onnx { get; init; }

    /// <summary>A shipped backbone (e.g. <c>resnet18-imagenet</c>) whose pooled features feed <see cref="Head"/>.</summary>
    public string? Backbone { get; init; }

    /// <summary>ONNX file of the classifier head over the backbone's features.</summary>
    public string? Head { get; init; }

    /// <summary>Name of the graph output that holds scores; the first output when absent.</summary>
    public string? Output { get; init; }

    /// <summary>True when the output is already a probability distribution; otherwise softmax is applied.</summary>
    public bool OutputIsProbabilities { get; init; } = true;

    public string? ParentVersion { get; init; }
    public DateTimeOffset? CreatedAt { get; init; }
    public JsonElement? Training { get; init; }
    public JsonElement? Metrics { get; init; }

    public static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    public static ModelCard Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        var card = JsonSerializer.Deserialize<ModelCard>(File.ReadAllText(path), JsonOptions)
            ?? throw new InvalidDataException($"{path} is empty");
        card.Validate(path);
        return card;
    }

    public void Validate(string origin)
    {
        if (Labels.Count == 0) throw new InvalidDataException($"{origin}: labels must not be empty");
        if ((Onnx is null) == (Backbone is null)) throw new InvalidDataException($"{origin}: set exactly one of onnx or backbone");
        if (Backbone is not null && Head is null) throw new InvalidDataException($"{origin}: a backbone model needs a head");
        Input.Validate(origin);
    }
}

public enum TensorLayout { Nchw, Nhwc }

public enum ChannelOrder { Rgb, Bgr }

/// <summary>How pixels become the input tensor: value = (pixel * scale - mean[c]) / std[c], pixel in 0..255.</summary>
public sealed record ModelInputSpec
{
    public string? Name { get; init; }
    public int Width { get; init; } = 224;
    public int Height { get; init; } = 224;
    public TensorLayout Layout { get; init; } = TensorLayout.Nchw;
    public ChannelOrder ChannelOrder { get; init; } = ChannelOrder.Rgb;
    public float Scale { get; init; } = 1f;
    public IReadOnlyList<float> Mean { get; init; } = [0f, 0f, 0f];
    public IReadOnlyList<float> Std { get; init; } = [1f, 1f, 1f];

    /// <summary>Resize: <c>stretch</c> to the input size, or <c>center_crop</c> (shorter side to size, then crop).</summary>
    public string Resize { get; init; } = "stretch";

    public void Validate(string origin)
    {
        if (Width <= 0 || Height <= 0) throw new InvalidDataException($"{origin}: input width and height must be positive");
        if (Mean.Count != 3 || Std.Count != 3) throw new InvalidDataException($"{origin}: input mean and std need three values");
        if (Std.Any(s => s == 0)) throw new InvalidDataException($"{origin}: input std must not be zero");
        if (Resize is not ("stretch" or "center_crop")) throw new InvalidDataException($"{origin}: input resize must be stretch or center_crop");
    }
}
