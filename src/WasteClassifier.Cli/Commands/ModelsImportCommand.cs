using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Components;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.Cli.Commands;

/// <summary>Registers an external ONNX image classifier (e.g. a MobileNetV2 exported from Keras) as a candidate model.</summary>
public sealed class ModelsImportCommand : ICommand
{
    public string Name => "models import";

    public string Summary => "register an external ONNX classifier and its card as a candidate model";

    public string Usage => """
        wastectl models import --onnx FILE --card FILE [--version NAME] [--data-directory DIR]

          --onnx FILE     the classifier graph: image tensor in, one score per label out
          --card FILE     its card.json: labels in output order and the input spec (see models/README.md)
          --version NAME  override the card's version
          --data-directory DIR  the embedded default's data folder (when not set in the environment); its database
                          must exist: `dotnet run --project src/WasteClassifier.Api` keeps it in src/WasteClassifier.Api/data
        The model is loaded and run once before it is registered, so a card that does not fit the graph is refused.
        A head from `wastectl train --out DIR` is refused too: it needs its backbone, so serve it with Model__Directory=DIR.
        Reads the deployment's configuration from the environment like the services (Database__*, ObjectStore__*).
        Promote it afterwards with POST /v1/models/{version}/promote.
        """;

    public IReadOnlySet<string> ValueOptions { get; } = new HashSet<string> { "--onnx", "--card", "--version", "--data-directory" };

    public IReadOnlySet<string> FlagOptions { get; } = new HashSet<string>();

    public int Run(CommandArguments arguments) => RunAsync(arguments).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(CommandArguments arguments)
    {
        var onnxPath = ExistingFile(arguments.Required("--onnx"));
        var cardPath = ExistingFile(arguments.Required("--card"));
        var card = ReadCard(cardPath, Path.GetFileName(onnxPath), arguments.Optional("--version"));
        if (!ModelRegistry.IsValidVersion(card.Version))
            throw new UsageException($"version '{card.Version}' must be 1–128 letters, digits, '.', '_' or '-'");
        Verify(card, onnxPath);

        var configuration = ServiceConfiguration.Build(new Dictionary<string, string?> { ["DataDirectory"] = arguments.Optional("--data-directory") });
        ServiceConfiguration.RequireExistingDatabase(configuration);
        var services = ServiceConfiguration.Services(configuration);
        services.AddClassifierDatabase(configuration);
        services.AddClassifierObjectStore(configuration);
        services.AddModelRegistry(configuration);
        // The registry can announce promotions; importing never does, so the bus is registered but not started.
        services.AddClassifierBus(configuration, _ => { });
        await using var provider = services.BuildServiceProvider();
        await provider.PrepareInfrastructureAsync(TimeSpan.FromSeconds(5));
        await using var scope = provider.CreateAsyncScope();
        var registry = scope.ServiceProvider.GetRequiredService<ModelRegistry>();
        if (await registry.FindAsync(card.Version, CancellationToken.None) is not null)
            throw new UsageException($"model version '{card.Version}' is already registered");

        var record = await RegisterAsync(registry, card, new Dictionary<string, byte[]> { [card.Onnx!] = File.ReadAllBytes(onnxPath) });
        Console.Out.WriteLine(JsonSerializer.Serialize(new { version = record.Version, status = record.Status, artifact_prefix = record.ArtifactPrefix }));
        return 0;
    }

    /// <summary>Registers the import as a candidate; a version registered meanwhile is the same usage error as one registered before.</summary>
    internal static async Task<ModelRecord> RegisterAsync(ModelRegistry registry, ModelCard card, Dictionary<string, byte[]> files)
    {
        try
        {
            return await registry.RegisterAsync(card, files, "imported", trainingJobId: null, card.Metrics?.GetRawText(), ModelStatus.Candidate, CancellationToken.None);
        }
        catch (InvalidOperationException)
        {
            // Another import (or a trained candidate) of this name registered between the check and this registration.
            if (await registry.FindAsync(card.Version, CancellationToken.None) is not null)
                throw new UsageException($"model version '{card.Version}' is already registered");
            throw;
        }
    }

    private static ModelCard ReadCard(string path, string onnxFileName, string? version)
    {
        ModelCard? card;
        try
        {
            card = JsonSerializer.Deserialize<ModelCard>(File.ReadAllText(path), ModelCard.JsonOptions);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a model card: {e.Message}");
        }
        if (card is null) throw new InvalidDataException($"{path} is empty");
        // A card naming a backbone and head is what `train --out` writes: the head alone is not an image classifier.
        if (card.Backbone is not null || card.Head is not null) throw HeadRefused(Path.GetDirectoryName(path)!);
        // The graph travels as the card's onnx file; a backbone reference would not match what is imported.
        card = card with { Onnx = onnxFileName, Backbone = null, Head = null, Version = version ?? card.Version, CreatedAt = card.CreatedAt ?? DateTimeOffset.UtcNow };
        card.Validate(path);
        return card;
    }

    /// <summary>Loads the graph with its card and classifies one blank image, exactly as a worker would.</summary>
    private static void Verify(ModelCard card, string onnxPath)
    {
        RefuseHead(card, onnxPath);
        var directory = Directory.CreateTempSubdirectory("wastectl-import").FullName;
        try
        {
            File.Copy(onnxPath, Path.Combine(directory, card.Onnx!));
            File.WriteAllText(Path.Combine(directory, ModelCard.FileName), JsonSerializer.Serialize(card, ModelCard.JsonOptions));
            using var classifier = ModelLoader.Load(directory, new InferenceOptions { IntraOpThreads = 1 });
        }
        catch (Exception e) when (e is not InvalidDataException and not FileNotFoundException)
        {
            throw new InvalidDataException($"the model could not be loaded with its card: {e.Message}");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// A head's input is the 2-D [batch, features] vector its backbone produces, not an image; ONNX Runtime would only
    /// say "Invalid rank for input", so a graph fed one rank-2 input is refused as a head whatever its card says.
    /// </summary>
    private static void RefuseHead(ModelCard card, string onnxPath)
    {
        Onnx.GraphProto graph;
        try
        {
            graph = OnnxGraphEditing.Load(onnxPath).Graph;
        }
        catch (Google.Protobuf.InvalidProtocolBufferException)
        {
            return; // not ONNX at all: loading it below says so
        }
        var inputs = OnnxGraphEditing.FedInputs(graph).ToList();
        var input = card.Input.Name is null ? inputs.FirstOrDefault() : inputs.FirstOrDefault(i => i.Name == card.Input.Name);
        if (input?.Type?.TensorType?.Shape?.Dim.Count == 2) throw HeadRefused(Path.GetDirectoryName(onnxPath)!);
    }

    private static UsageException HeadRefused(string directory) =>
        new($"this is a trained head (a feature vector in, not an image): it needs its backbone, so serve its folder " +
            $"(head.onnx and card.json) with Model__Directory={directory} (README, The model); models import takes a complete ONNX image classifier");

    private static string ExistingFile(string path) =>
        File.Exists(path) ? Path.GetFullPath(path) : throw new FileNotFoundException($"file not found: {path}", path);
}
