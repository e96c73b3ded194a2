using WasteClassifier.Core.Inference;

namespace WasteClassifier.Components.Models;

/// <summary>The configured model's card, read without loading the network: what an API-only process knows about the model.</summary>
public sealed class ModelCatalog(ModelOptions options)
{
    /// <summary>The product's classes, used only if no card can be read.</summary>
    public static readonly IReadOnlyList<string> ProductClasses =
        ["cardboard", "food organics", "glass", "metal", "miscellaneous trash", "paper", "plastic", "textile trash", "vegetation"];

    private readonly Lazy<ModelCard?> _card = new(() => TryLoad(options.Directory));

    public ModelCard? Card => _card.Value;

    public IReadOnlyList<string> Labels => Card?.Labels ?? ProductClasses;

    private static ModelCard? TryLoad(string directory)
    {
        try
        {
            return ModelCard.Load(directory);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or System.Text.Json.JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
