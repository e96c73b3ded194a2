using Google.Protobuf;

namespace WasteClassifier.Core.Inference;

/// <summary>Builds a classifier from a model folder (card.json plus the files it names).</summary>
public static class ModelLoader
{
    public static OnnxImageClassifier Load(string modelDirectory, InferenceOptions? options = null)
    {
        options ??= InferenceOptions.Default;
        if (!Directory.Exists(modelDirectory)) throw new DirectoryNotFoundException($"model folder not found: {modelDirectory}");
        var card = ModelCard.Load(modelDirectory);

        var applySoftmax = card.Backbone is null && !card.OutputIsProbabilities;
        var session = OnnxSessionFactory.Create(
            () => card.Backbone is not null ? ComposeBackboneModel(card, modelDirectory, options) : ReadFile(modelDirectory, card.Onnx!), options);
        try
        {
            var inputName = card.Input.Name ?? session.InputNames[0];
            var outputName = card.Output ?? session.OutputNames[0];
            if (!session.InputNames.Contains(inputName)) throw new InvalidDataException($"model {card.Version} has no input named '{inputName}'");
            if (!session.OutputNames.Contains(outputName)) throw new InvalidDataException($"model {card.Version} has no output named '{outputName}'");
            var classifier = new OnnxImageClassifier(card, new BatchRunner(session, inputName, outputName, options), applySoftmax);
            classifier.Validate();
            return classifier;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private static byte[] ComposeBackboneModel(ModelCard card, string modelDirectory, InferenceOptions options)
    {
        var backbone = BackboneDefinition.Find(card.Backbone!);
        if (card.Input.Width != backbone.Input.Width || card.Input.Height != backbone.Input.Height || card.Input.Layout != backbone.Input.Layout)
            throw new InvalidDataException($"model {card.Version}: backbone {backbone.Id} takes {backbone.Input.Layout} {backbone.Input.Width}×{backbone.Input.Height} input");
        var head = OnnxGraphEditing.Load(Path.Combine(modelDirectory, card.Head!));
        return BackboneGraphComposer.ComposeClassifier(backbone, options.BackbonesRoot, head).ToByteArray();
    }

    private static byte[] ReadFile(string modelDirectory, string file)
    {
        var path = Path.Combine(modelDirectory, file);
        if (!File.Exists(path)) throw new FileNotFoundException($"model file not found: {path}", path);
        return File.ReadAllBytes(path);
    }
}
